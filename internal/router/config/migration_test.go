package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMigrationConfig(t *testing.T) {
	c, err := Parse([]byte("scheduler: {}\n"))
	require.NoError(t, err)
	n, idle := c.MigrationLimits()
	assert.Equal(t, DefaultMigrationAttempts, n, "on by default")
	assert.Zero(t, idle, "idle timeout off by default")

	c, err = Parse([]byte("migration: {maxAttempts: 0, idleTimeout: 2s}\n"))
	require.NoError(t, err)
	n, idle = c.MigrationLimits()
	assert.Zero(t, n)
	assert.Equal(t, 2*time.Second, idle)

	for _, bad := range []string{
		"migration: {maxAttempts: -1}\n",
		"migration: {maxAttempts: 11}\n",
		"migration: {idleTimeout: -1s}\n",
		"migration: {attempts: 2}\n",
	} {
		_, err := Parse([]byte(bad))
		assert.Error(t, err, bad)
	}
}
