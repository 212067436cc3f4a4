package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestColdStartReleasePerPod(t *testing.T) {
	c, err := Parse([]byte("scheduler: {}\n"))
	require.NoError(t, err)
	assert.Equal(t, DefaultReleasePerPod, c.ColdStartReleasePerPod(), "paced by default")

	c, err = Parse([]byte("coldStart: {releasePerPod: 0}\n"))
	require.NoError(t, err)
	assert.Zero(t, c.ColdStartReleasePerPod(), "0 releases every held request at once")

	_, err = Parse([]byte("coldStart: {releasePerPod: -1}\n"))
	assert.Error(t, err)
}
