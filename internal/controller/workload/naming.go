// Package workload holds the ModelServing controller: it turns a ModelServing
// into serving groups of role replicas, each an entry pod plus worker pods,
// and keeps them at the desired count, revision and health.
package workload

import (
	"fmt"
	"strconv"
	"strings"
)

// SurgeLabelKey marks the pods of a surge group: a serving group created
// above spec.replicas during a ServingGroupRollingUpdate with maxSurge, and
// removed once the groups it stands in for are updated. The label, not the
// ordinal, tells a surge group apart, since scale-down may leave regular
// groups at ordinals at or above spec.replicas.
const SurgeLabelKey = "modelserving.volcano.sh/surge"

// GroupName is the name of serving group i of a ModelServing: "<ms>-<i>".
// The PodGroup of the group has the same name.
func GroupName(ms string, i int) string { return ms + "-" + strconv.Itoa(i) }

// RoleID is the id of replica j of a role: "<role>-<j>".
func RoleID(role string, j int) string { return role + "-" + strconv.Itoa(j) }

// PodName is the name of pod k of replica j of a role in group i:
// "<ms>-<i>-<role>-<j>-<k>". k = 0 is the entry pod, 1..workerReplicas are workers.
func PodName(ms string, i int, role string, j, k int) string {
	return fmt.Sprintf("%s-%d-%s-%d-%d", ms, i, role, j, k)
}

// ServiceName is the name of the headless Service of a role replica; it is
// the entry pod's name, so that "<entry-pod>.<namespace>" resolves to it.
func ServiceName(ms string, i int, role string, j int) string { return PodName(ms, i, role, j, 0) }

// EntryAddress is the DNS name workers use to reach their entry pod.
func EntryAddress(ms, namespace string, i int, role string, j int) string {
	return ServiceName(ms, i, role, j) + "." + namespace
}

// RevisionName is the ControllerRevision name of a revision hash.
func RevisionName(ms, hash string) string { return ms + "-" + hash }

// ordinalSuffix parses the trailing "-<n>" of name after prefix+"-".
// It returns -1 when name does not have that shape.
func ordinalSuffix(prefix, name string) int {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok || rest == "" {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return -1
	}
	return n
}

// GroupOrdinal returns i of a group name "<ms>-<i>", or -1.
func GroupOrdinal(ms, group string) int { return ordinalSuffix(ms, group) }

// RoleOrdinal returns j of a role id "<role>-<j>", or -1.
func RoleOrdinal(role, roleID string) int { return ordinalSuffix(role, roleID) }

// WorkerIndex returns k of a pod name whose role replica is known, or -1.
func WorkerIndex(ms string, i int, role string, j int, pod string) int {
	return ordinalSuffix(fmt.Sprintf("%s-%d-%s-%d", ms, i, role, j), pod)
}
