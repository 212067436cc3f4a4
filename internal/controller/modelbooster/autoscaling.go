package modelbooster

import workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"

// buildAutoscalingPolicy generates the booster's AutoscalingPolicy, or nil
// when it asks for none.
func buildAutoscalingPolicy(_ *plan) (*workloadv1alpha1.AutoscalingPolicy, error) {
	return nil, nil
}
