package workload

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// Template is the part of a ModelServing that decides what a pod looks like,
// and so is versioned: changing it is a new revision and rolls the pods.
// Replica counts, rollout budgets, recovery policy, schedulerName, gangPolicy
// and networkTopology are not part of it (see docs/modelserving.md).
type Template struct {
	Roles   []workloadv1alpha1.Role       `json:"roles"`
	Plugins []workloadv1alpha1.PluginSpec `json:"plugins,omitempty"`
}

// TemplateOf returns the versioned template of a ModelServing, with the
// per-role counts and rollout settings stripped.
func TemplateOf(ms *workloadv1alpha1.ModelServing) Template {
	t := Template{Plugins: ms.Spec.Plugins}
	for i := range ms.Spec.Template.Roles {
		t.Roles = append(t.Roles, stripRole(ms.Spec.Template.Roles[i]))
	}
	return t
}

func stripRole(r workloadv1alpha1.Role) workloadv1alpha1.Role {
	r = *r.DeepCopy()
	r.Replicas = nil
	r.MaxUnavailable = nil
	r.Partition = nil
	return r
}

// Role returns the role named name, or nil.
func (t Template) Role(name string) *workloadv1alpha1.Role {
	for i := range t.Roles {
		if t.Roles[i].Name == name {
			return &t.Roles[i]
		}
	}
	return nil
}

// Hash is the revision hash of the template.
func (t Template) Hash() string { return hashOf(t) }

// RoleHash is the hash of one role of the template (with the plugins, which
// shape every pod).
func (t Template) RoleHash(name string) string {
	r := t.Role(name)
	if r == nil {
		return ""
	}
	return hashOf(struct {
		Role    workloadv1alpha1.Role         `json:"role"`
		Plugins []workloadv1alpha1.PluginSpec `json:"plugins,omitempty"`
	}{stripRole(*r), t.Plugins})
}

func hashOf(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		// API types always marshal; a failure is a programming error.
		panic(fmt.Sprintf("hashing template: %v", err))
	}
	h := fnv.New32a()
	_, _ = h.Write(data)
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// newControllerRevision builds the ControllerRevision storing t.
func newControllerRevision(ms *workloadv1alpha1.ModelServing, t *Template, hash string, number int64) (*appsv1.ControllerRevision, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:      RevisionName(ms.Name, hash),
			Namespace: ms.Namespace,
			Labels: map[string]string{
				workloadv1alpha1.ModelServingNameLabelKey: ms.Name,
				workloadv1alpha1.RevisionLabelKey:         hash,
			},
			OwnerReferences: []metav1.OwnerReference{ownerRef(ms)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: number,
	}, nil
}

// revisionSet holds the templates of the revisions known for a ModelServing.
type revisionSet struct {
	update     string
	current    string
	templates  map[string]*Template
	maxNumber  int64
	objects    map[string]*appsv1.ControllerRevision
	updateTmpl *Template
	// roleHashes memoises roleHash: hashing marshals the role.
	roleHashes map[[2]string]string
}

// roleHash is the role-template hash of role in revision rev.
func (rs *revisionSet) roleHash(rev, role string) string {
	key := [2]string{rev, role}
	if h, ok := rs.roleHashes[key]; ok {
		return h
	}
	t, ok := rs.templates[rev]
	if !ok {
		return ""
	}
	h := t.RoleHash(role)
	rs.roleHashes[key] = h
	return h
}

func newRevisionSet(update *Template, crs []appsv1.ControllerRevision) *revisionSet {
	rs := &revisionSet{update: update.Hash(), templates: map[string]*Template{}, objects: map[string]*appsv1.ControllerRevision{}, updateTmpl: update, roleHashes: map[[2]string]string{}}
	rs.templates[rs.update] = update
	for i := range crs {
		cr := &crs[i]
		hash := cr.Labels[workloadv1alpha1.RevisionLabelKey]
		if hash == "" {
			continue
		}
		rs.objects[hash] = cr
		if cr.Revision > rs.maxNumber {
			rs.maxNumber = cr.Revision
		}
		if hash == rs.update {
			continue
		}
		var t Template
		if err := json.Unmarshal(cr.Data.Raw, &t); err == nil {
			rs.templates[hash] = &t
		}
	}
	return rs
}

// template returns the template of revision hash, or the update template if
// that revision is unknown.
func (rs *revisionSet) template(hash string) (*Template, string) {
	if t, ok := rs.templates[hash]; ok {
		return t, hash
	}
	return rs.updateTmpl, rs.update
}

// stale lists the ControllerRevisions that are neither current, update, nor
// used by a pod, sorted by name.
func (rs *revisionSet) stale(inUse map[string]bool) []*appsv1.ControllerRevision {
	var out []*appsv1.ControllerRevision
	for hash, cr := range rs.objects {
		if hash == rs.update || hash == rs.current || inUse[hash] {
			continue
		}
		out = append(out, cr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
