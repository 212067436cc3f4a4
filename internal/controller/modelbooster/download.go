package modelbooster

import (
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// DefaultDownloaderImage is the model downloader run as an init container:
// upstream's image, whose CLI (--source, --output-dir, env fallbacks for
// credentials) is the contract.
const DefaultDownloaderImage = "ghcr.io/volcano-sh/downloader:latest"

const (
	cacheVolume     = "model-cache"
	cacheMountPath  = "/models"
	shmVolume       = "dshm"
	downloaderName  = "model-downloader"
	engineContainer = "engine"
)

// modelSource is how an engine pod gets the weights: the volume they live
// on, where the engine reads them, and the init container that puts them
// there (none when they already are on a claim).
type modelSource struct {
	path       string
	volume     corev1.Volume
	mount      corev1.VolumeMount
	downloader *corev1.Container
}

// newModelSource follows cacheURI for the volume (emptyDir when unset) and
// modelURI for the download. A pvc:// model is read in place: admission
// requires the cache to be on the same claim, so copying it would only
// duplicate it.
func newModelSource(b *workloadv1alpha1.ModelBackend, downloaderImage string) modelSource {
	s := modelSource{
		volume: corev1.Volume{Name: cacheVolume},
		mount:  corev1.VolumeMount{Name: cacheVolume, MountPath: cacheMountPath},
	}
	if rest, ok := strings.CutPrefix(b.ModelURI, "pvc://"); ok {
		claim, sub, _ := strings.Cut(rest, "/")
		s.volume.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}
		s.path = path.Join(cacheMountPath, sub)
		return s
	}
	switch {
	case strings.HasPrefix(b.CacheURI, "pvc://"):
		claim, sub, _ := strings.Cut(strings.TrimPrefix(b.CacheURI, "pvc://"), "/")
		s.volume.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}
		s.mount.SubPath = sub
	case strings.HasPrefix(b.CacheURI, "hostpath://"):
		s.volume.HostPath = &corev1.HostPathVolumeSource{
			Path: "/" + strings.TrimLeft(strings.TrimPrefix(b.CacheURI, "hostpath://"), "/"),
			Type: ptrTo(corev1.HostPathDirectoryOrCreate),
		}
	default:
		s.volume.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	s.path = path.Join(cacheMountPath, modelDirName(b.ModelURI))
	s.downloader = &corev1.Container{
		Name:         downloaderName,
		Image:        downloaderImage,
		Args:         []string{"--source", b.ModelURI, "--output-dir", s.path},
		Env:          b.Env,
		EnvFrom:      b.EnvFrom,
		VolumeMounts: []corev1.VolumeMount{s.mount},
	}
	return s
}

// shm is a memory-backed /dev/shm: the container runtime's 64 MiB default
// is too small for the engines' tensor-parallel and NCCL buffers.
func shm() (corev1.Volume, corev1.VolumeMount) {
	return corev1.Volume{Name: shmVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.VolumeMount{Name: shmVolume, MountPath: "/dev/shm"}
}

func ptrTo[T any](v T) *T { return &v }
