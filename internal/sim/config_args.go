package sim

import (
	"encoding/json"
	"strconv"
	"time"
)

// Args renders the configuration as kthena-sim command-line arguments, the
// inverse of ParseArgs: a platform that builds a Config can start the binary
// with exactly that configuration. Zero-valued fields are omitted so the
// binary applies its own defaults.
func (c Config) Args() []string {
	var a []string
	str := func(flag, v string) {
		if v != "" {
			a = append(a, "--"+flag, v)
		}
	}
	num := func(flag string, v int) {
		if v != 0 {
			a = append(a, "--"+flag, strconv.Itoa(v))
		}
	}
	dur := func(flag string, v time.Duration) {
		if v != 0 {
			a = append(a, "--"+flag, v.String())
		}
	}
	flt := func(flag string, v float64) {
		if v != 0 {
			a = append(a, "--"+flag, strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	str("engine", string(c.Engine))
	str("model", c.Model)
	for _, n := range c.ServedModelNames {
		str("served-model-name", n)
	}
	str("host", c.Host)
	num("port", c.Port)
	str("advertise-host", c.AdvertiseHost)
	str("tokenizer-dir", c.TokenizerDir)
	str("profile", c.Profile)
	flt("time-scale", c.TimeScale)
	str("mode", string(c.Mode))
	if c.Seed != 0 {
		a = append(a, "--seed", strconv.FormatInt(c.Seed, 10))
	}
	dur("time-to-first-token", c.TimeToFirstToken)
	dur("inter-token-latency", c.InterTokenLatency)
	num("max-num-seqs", c.MaxNumSeqs)
	num("max-model-len", c.MaxModelLen)
	num("max-num-batched-tokens", c.MaxNumBatchedTokens)
	if c.EnablePrefixCaching != nil {
		a = append(a, "--enable-prefix-caching="+strconv.FormatBool(*c.EnablePrefixCaching))
	}
	num("kv-cache-size", c.KVCacheSize)
	num("block-size", c.BlockSize)
	flt("gpu-memory-utilization", c.GPUMemoryUtilization)
	str("hash-seed", c.HashSeed)
	num("max-loras", c.MaxLoRAs)
	num("max-cpu-loras", c.MaxCPULoRAs)
	for _, m := range c.LoRAModules {
		b, _ := json.Marshal(m)
		str("lora-modules", string(b))
	}
	dur("lora-load-latency", c.LoRALoadLatency)
	str("kv-role", string(c.KVRole))
	dur("kv-transfer-timeout", c.KVTransferTimeout)
	str("kv-load-failure-policy", c.KVLoadFailurePolicy)
	num("disaggregation-bootstrap-port", c.BootstrapPort)
	str("kv-connector", c.KVConnector)
	str("lmcache-url", c.LMCacheURL)
	num("lmcache-chunk-size", c.LMCacheChunkSize)
	str("kv-events-endpoint", c.KVEventsEndpoint)
	str("kv-events-topic", c.KVEventsTopic)
	if c.KVEventsIntHashes {
		a = append(a, "--kv-events-int-hashes")
	}
	if c.KVEventsKeyed {
		a = append(a, "--kv-events-keyed")
	}
	dur("startup-delay", c.StartupDelay)
	flt("failure-injection-rate", c.FailureInjectionRate)
	for _, f := range c.FailureTypes {
		str("failure-types", f)
	}
	num("crash-after", c.CrashAfter)
	dur("shutdown-grace", c.ShutdownGrace)
	return a
}
