package v1alpha1

// Labels the ModelServing controller puts on the pods and services it creates.
const (
	// ModelServingNameLabelKey is the owning ModelServing's name.
	ModelServingNameLabelKey = "modelserving.volcano.sh/name"
	// GroupNameLabelKey is the serving group, "<modelserving>-<ordinal>".
	GroupNameLabelKey = "modelserving.volcano.sh/group-name"
	// RoleLabelKey is the role name, for example "prefill".
	RoleLabelKey = "modelserving.volcano.sh/role"
	// RoleIDLabelKey is the role replica, "<role>-<ordinal>".
	RoleIDLabelKey = "modelserving.volcano.sh/role-id"
	// EntryLabelKey is "true" on the entry pod of a role replica only.
	EntryLabelKey = "modelserving.volcano.sh/entry"
	// RevisionLabelKey is the ModelServing revision the pod was built from.
	RevisionLabelKey = "modelserving.volcano.sh/revision"
	// RoleTemplateHashLabelKey is the hash of the role template the pod was built from.
	RoleTemplateHashLabelKey = "modelserving.volcano.sh/role-template-hash"
)

// Environment variables injected into every container of a serving pod.
const (
	// EntryAddressEnv is the DNS name of the role replica's entry pod.
	EntryAddressEnv = "ENTRY_ADDRESS"
	// WorkerIndexEnv is 0 for the entry pod and 1..N for workers.
	WorkerIndexEnv = "WORKER_INDEX"
	// GroupSizeEnv is the number of pods in the role replica (workers + 1).
	GroupSizeEnv = "GROUP_SIZE"
)

// Well-known annotations.
const (
	// PodDeletionCostAnnotationKey ranks units on scale-down: the lowest sum
	// over a unit's pods goes first.
	PodDeletionCostAnnotationKey = "controller.kubernetes.io/pod-deletion-cost"
	// VolcanoQueueAnnotationKey on a ModelServing selects the Volcano queue of its PodGroups.
	VolcanoQueueAnnotationKey = "scheduling.volcano.sh/queue-name"
)

// Labels the ModelBooster controller puts on the objects it generates.
const (
	ModelBoosterModelNameLabelKey   = "workload.serving.volcano.sh/model-name"
	ModelBoosterBackendNameLabelKey = "workload.serving.volcano.sh/backend-name"
	ModelBoosterManagedByLabelKey   = "workload.serving.volcano.sh/managed-by"
	ModelBoosterRevisionLabelKey    = "workload.serving.volcano.sh/revision"
	ModelBoosterModelUIDLabelKey    = "workload.serving.volcano.sh/model-uid"
	// ModelBoosterManagedByValue is the managed-by value of generated objects.
	ModelBoosterManagedByValue = "workload.serving.volcano.sh"
)
