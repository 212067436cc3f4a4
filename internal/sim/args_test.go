package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseArgsLLMDCompatible(t *testing.T) {
	cfg, ignored, err := ParseArgs([]string{
		"--model", "Qwen/Qwen2.5-1.5B-Instruct", "--served-model-name", "a", "--served-model-name=b",
		"--port", "8001", "--mode=echo", "--time-to-first-token", "150", "--inter-token-latency=20",
		"--max-num-seqs", "5", "--enable-kvcache", "--kv-cache-size", "1024", "--block-size", "16",
		"--max-loras", "2", "--lora-modules", `{"name":"sql","path":"/a"}`, "--lora-modules", "chat=/b tools=/c",
		"--kv-role=decode", "--kv-events-endpoint", "tcp://*:5557", "--startup-delay", "3s",
		"--failure-injection-rate", "10", "--failure-types", "rate_limit,server_error", "--crash-after", "9",
		"--prefill-time-per-token", "2", "--force-dummy-tokenizer", "--seed", "7",
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"--prefill-time-per-token", "2", "--force-dummy-tokenizer"}, ignored)
	assert.Equal(t, "Qwen/Qwen2.5-1.5B-Instruct", cfg.Model)
	assert.Equal(t, []string{"a", "b"}, cfg.ServedModelNames)
	assert.Equal(t, 150*time.Millisecond, cfg.TimeToFirstToken)
	assert.Equal(t, 20*time.Millisecond, cfg.InterTokenLatency)
	assert.Equal(t, []LoRAModule{{"sql", "/a"}, {"chat", "/b"}, {"tools", "/c"}}, cfg.LoRAModules)
	assert.Equal(t, RoleDecode, cfg.KVRole)
	assert.Equal(t, []string{FailureRateLimit, FailureServerError}, cfg.FailureTypes)
	assert.Equal(t, int64(7), cfg.Seed)
	full := cfg.WithDefaults()
	require.NoError(t, full.Validate())
	assert.Equal(t, "kv-events", full.KVEventsTopic)

	multi, ignored, err := ParseArgs([]string{"--served-model-name", "x", "y", "--lora-modules", `{"name":"a","path":"/a"}`,
		`{"name":"b","path":"/b"}`, "--time-to-first-token", "1.5s", "--no-enable-prefix-caching", "--max-num-seqs", "3"})
	require.NoError(t, err)
	assert.Empty(t, ignored)
	assert.Equal(t, []string{"x", "y"}, multi.ServedModelNames)
	assert.Len(t, multi.LoRAModules, 2)
	assert.Equal(t, 1500*time.Millisecond, multi.TimeToFirstToken)
	assert.False(t, multi.prefixCaching())
	assert.Equal(t, 3, multi.MaxNumSeqs)

	_, _, err = ParseArgs([]string{"--lora-modules", "bad"})
	assert.Error(t, err)
	bad, _, err := ParseArgs([]string{"--engine", "tgi", "--kv-role", "x", "--failure-types", "nope"})
	require.NoError(t, err)
	err = bad.WithDefaults().Validate()
	assert.ErrorContains(t, err, "engine must be")
	assert.ErrorContains(t, err, "kv-role")
	assert.ErrorContains(t, err, "unknown failure type")
}

func TestKVTransferConfigMapsToConnectorAndRole(t *testing.T) {
	cfg, _, err := ParseArgs([]string{"--kv-transfer-config", `{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_producer"}`})
	require.NoError(t, err)
	assert.Equal(t, ConnectorLMCache, cfg.KVConnector)
	assert.Equal(t, RolePrefill, cfg.KVRole)
	assert.Equal(t, DefaultLMCacheChunkSize, cfg.WithDefaults().LMCacheChunkSize)

	cfg, _, err = ParseArgs([]string{"--kv-role", "decode", "--kv-transfer-config", `{"kv_connector":"NixlConnector","kv_role":"kv_both"}`})
	require.NoError(t, err)
	assert.Equal(t, ConnectorNixl, cfg.KVConnector)
	assert.Equal(t, RoleDecode, cfg.KVRole, "an explicit --kv-role wins")

	assert.Equal(t, ConnectorNixl, Config{KVRole: RoleDecode}.WithDefaults().KVConnector)
	assert.Equal(t, ConnectorNone, Config{}.WithDefaults().KVConnector)
	assert.Equal(t, ConnectorNone, Config{Engine: SGLang, KVRole: RolePrefill}.WithDefaults().KVConnector)
	err = Config{KVConnector: "rdma"}.WithDefaults().Validate()
	assert.ErrorContains(t, err, "kv-connector")
	err = Config{KVConnector: ConnectorLMCache, LMCacheChunkSize: 100}.WithDefaults().Validate()
	assert.ErrorContains(t, err, "lmcache-chunk-size")
	_, _, err = ParseArgs([]string{"--kv-transfer-config", `{"kv_role":"sideways"}`})
	assert.Error(t, err)
}

func TestDefaultsAreRealistic(t *testing.T) {
	c := Config{}.WithDefaults()
	require.NoError(t, c.Validate())
	assert.Equal(t, "llama-3.1-8b-h100", c.Profile)
	assert.Equal(t, 32768, c.MaxModelLen)
	assert.True(t, c.prefixCaching())
	assert.Equal(t, 1.0, c.TimeScale)
	assert.Equal(t, 8000, c.Port)
	assert.Equal(t, 30000, Config{Engine: SGLang}.WithDefaults().Port)
}

func TestArgsRoundTrip(t *testing.T) {
	off := false
	want := Config{Engine: SGLang, Model: "m", ServedModelNames: []string{"a", "b"}, Port: 9000, TokenizerDir: "/models/m",
		Profile: "qwen2.5-7b-a10g", TimeScale: 0.25, Mode: ModeEcho, Seed: 9,
		TimeToFirstToken: 120 * time.Millisecond, InterTokenLatency: 15 * time.Millisecond,
		MaxNumSeqs: 7, MaxModelLen: 4096, EnablePrefixCaching: &off, KVCacheSize: 300, BlockSize: 32,
		MaxLoRAs: 2, LoRAModules: []LoRAModule{{"x", "/x"}}, KVRole: RolePrefill, BootstrapPort: 8999,
		KVConnector: ConnectorLMCache, LMCacheURL: "http://10.0.0.1:8000", LMCacheChunkSize: 64,
		KVEventsEndpoint: "tcp://*:5557", KVEventsIntHashes: true, StartupDelay: 2 * time.Second,
		FailureInjectionRate: 12.5, FailureTypes: []string{FailureServerError}, CrashAfter: 3}.WithDefaults()
	got, ignored, err := ParseArgs(want.Args())
	require.NoError(t, err)
	assert.Empty(t, ignored)
	assert.Equal(t, want, got.WithDefaults())
}

func TestParseArgsShutdownTimeout(t *testing.T) {
	for args, want := range map[string]time.Duration{
		"":                      10 * time.Second,
		"--shutdown-timeout=45": 45 * time.Second,
		"--shutdown-timeout=0":  time.Nanosecond, // vLLM aborts at once
		"--shutdown-grace=3s":   3 * time.Second,
	} {
		var argv []string
		if args != "" {
			argv = []string{args}
		}
		cfg, ignored, err := ParseArgs(argv)
		require.NoError(t, err, args)
		assert.Empty(t, ignored, args)
		assert.Equal(t, want, cfg.WithDefaults().ShutdownGrace, args)
	}
}
