package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// FlagUsages is the help text of the simulator's flags.
func FlagUsages() string {
	fs, _ := flagSet(&Config{})
	return fs.FlagUsages()
}

// flagSet declares the simulator's flags, compatible with the common flags
// of llm-d-inference-sim, bound to cfg.
func flagSet(cfg *Config) (*pflag.FlagSet, *flagExtras) {
	fs := pflag.NewFlagSet("kthena-sim", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	x := &flagExtras{}
	fs.StringVar((*string)(&cfg.Engine), "engine", "vllm", "engine flavour: vllm or sglang")
	fs.StringVar(&cfg.Model, "model", "", "model name (default: the profile's model)")
	fs.StringSliceVar(&cfg.ServedModelNames, "served-model-name", nil, "served model names (repeatable)")
	fs.StringVar(&cfg.Host, "host", "0.0.0.0", "listen host")
	fs.IntVar(&cfg.Port, "port", 0, "listen port (default 8000 for vllm, 30000 for sglang)")
	fs.StringVar(&cfg.AdvertiseHost, "advertise-host", "", "address peers use to reach this engine (PD)")
	fs.StringVar(&cfg.TokenizerDir, "tokenizer-dir", "", "directory of the model's Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json); default: the built-in cl100k_base encoding")
	fs.StringVar(&cfg.Profile, "profile", "", "performance profile (llama-3.1-8b-h100, qwen2.5-32b-2xh100, qwen2.5-7b-a10g)")
	fs.Float64Var(&cfg.TimeScale, "time-scale", 1, "wall seconds per simulated second (0.01 = 100x faster)")
	fs.StringVar((*string)(&cfg.Mode), "mode", "random", "output text: echo or random")
	fs.Int64Var(&cfg.Seed, "seed", 1, "random seed")
	fs.Var((*millis)(&cfg.TimeToFirstToken), "time-to-first-token", "fixed TTFT, ms or a duration such as 150ms (overrides the roofline)")
	fs.Var((*millis)(&cfg.InterTokenLatency), "inter-token-latency", "fixed inter-token latency, ms or a duration (overrides the roofline)")
	fs.IntVar(&cfg.MaxNumSeqs, "max-num-seqs", 0, "max running sequences")
	fs.IntVar(&cfg.MaxModelLen, "max-model-len", 0, "context length")
	fs.IntVar(&cfg.MaxNumBatchedTokens, "max-num-batched-tokens", 0, "token budget per step")
	fs.BoolVar(&x.prefixCaching, "enable-kvcache", true, "prefix caching (llm-d name)")
	fs.BoolVar(&x.prefixCaching, "enable-prefix-caching", true, "prefix caching (vLLM name)")
	fs.BoolVar(&x.noPrefixCaching, "no-enable-prefix-caching", false, "disable prefix caching (vLLM name)")
	fs.IntVar(&cfg.KVCacheSize, "kv-cache-size", 0, "KV cache size in blocks (default: from GPU memory)")
	fs.IntVar(&cfg.BlockSize, "block-size", 16, "tokens per KV block")
	fs.Float64Var(&cfg.GPUMemoryUtilization, "gpu-memory-utilization", 0, "fraction of GPU memory for weights and KV cache")
	fs.StringVar(&cfg.HashSeed, "hash-seed", "", "block hash seed (default: PYTHONHASHSEED or vLLM's fixed seed)")
	fs.IntVar(&cfg.MaxLoRAs, "max-loras", 1, "LoRA adapters per batch")
	fs.IntVar(&cfg.MaxCPULoRAs, "max-cpu-loras", 0, "loaded adapters kept (0 = unlimited)")
	fs.StringArrayVar(&x.loraModules, "lora-modules", nil, `adapters: JSON {"name":..,"path":..} or name=path (repeatable)`)
	fs.DurationVar(&cfg.LoRALoadLatency, "lora-load-latency", 200*time.Millisecond, "simulated adapter load time")
	fs.StringVar((*string)(&cfg.KVRole), "kv-role", "both", "disaggregation role: prefill, decode or both")
	fs.DurationVar(&cfg.KVTransferTimeout, "kv-transfer-timeout", 30*time.Second, "how long a decode engine waits for its prefill")
	fs.StringVar(&cfg.KVLoadFailurePolicy, "kv-load-failure-policy", "recompute", "when pulling a prefill's KV fails: recompute (prefill locally) or fail (answer 500)")
	fs.IntVar(&cfg.BootstrapPort, "disaggregation-bootstrap-port", 0, "SGLang prefill bootstrap port")
	fs.StringVar(&cfg.KVConnector, "kv-connector", "", "KV transfer: nixl (kv_transfer_params pull), lmcache (shared store) or none (default: nixl for vllm prefill/decode roles)")
	fs.StringVar(&cfg.LMCacheURL, "lmcache-url", "", "base URL of the shared LMCache store (an engine or kthena-sim lmcache-server); empty: this engine's own")
	fs.IntVar(&cfg.LMCacheChunkSize, "lmcache-chunk-size", 0, "LMCache chunk size in tokens (default 256)")
	fs.StringVar(&x.kvTransferConfig, "kv-transfer-config", "", `vLLM JSON form: {"kv_connector":"NixlConnector|LMCacheConnectorV1|...","kv_role":"kv_producer|kv_consumer|kv_both","kv_load_failure_policy":"recompute|fail"}`)
	fs.StringVar(&cfg.KVEventsEndpoint, "kv-events-endpoint", "", "ZMQ PUB endpoint for KV events, e.g. tcp://*:5557")
	fs.StringVar(&cfg.KVEventsEndpoint, "zmq-endpoint", "", "alias of --kv-events-endpoint (llm-d name)")
	fs.StringVar(&cfg.KVEventsTopic, "kv-events-topic", "", `ZMQ topic (default "kv-events" for vllm)`)
	fs.BoolVar(&cfg.KVEventsIntHashes, "kv-events-int-hashes", false, "send block hashes as 64-bit integers")
	fs.BoolVar(&cfg.KVEventsKeyed, "kv-events-keyed", false, "encode events as maps instead of arrays")
	fs.StringVar(&x.kvEventsConfig, "kv-events-config", "", `vLLM JSON form: {"enable_kv_cache_events":true,"endpoint":..,"topic":..}`)
	fs.DurationVar(&cfg.StartupDelay, "startup-delay", 0, "time /health answers 503 after start")
	fs.DurationVar(&cfg.StartupDelay, "startup-duration", 0, "alias of --startup-delay (llm-d name)")
	fs.Float64Var(&cfg.FailureInjectionRate, "failure-injection-rate", 0, "percent of requests failed on purpose")
	fs.StringSliceVar(&cfg.FailureTypes, "failure-types", nil, "failure kinds to inject")
	fs.IntVar(&cfg.CrashAfter, "crash-after", 0, "exit after this many requests (0 = never)")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 10*time.Second, "time in-flight requests get on SIGTERM")
	fs.IntVar(&x.shutdownTimeout, "shutdown-timeout", -1, "vLLM's form of --shutdown-grace, in seconds (0 aborts in-flight requests at once)")
	return fs, x
}

// flagExtras holds flag values that need conversion after parsing.
type flagExtras struct {
	prefixCaching    bool
	noPrefixCaching  bool
	loraModules      []string
	kvEventsConfig   string
	kvTransferConfig string
	shutdownTimeout  int
}

// ParseArgs builds a Config from command-line arguments written for
// kthena-sim, llm-d-inference-sim or vllm serve. Flags it does not know are
// returned in ignored instead of failing, so manifests written for other
// simulators run; the caller logs them.
func ParseArgs(args []string) (Config, []string, error) {
	var cfg Config
	fs, x := flagSet(&cfg)
	known, ignored := splitUnknown(fs, expandMultiValue(args))
	if err := fs.Parse(known); err != nil {
		return Config{}, ignored, fmt.Errorf("parse flags: %w", err)
	}
	if x.shutdownTimeout >= 0 {
		// vLLM aborts in-flight requests when its timeout is 0; a zero
		// grace would mean "default" here, so 0 becomes the shortest grace.
		cfg.ShutdownGrace = max(time.Duration(x.shutdownTimeout)*time.Second, time.Nanosecond)
	}
	if fs.NArg() > 0 && cfg.Model == "" {
		cfg.Model = fs.Arg(0) // `vllm serve MODEL`
	}
	pc := x.prefixCaching && !x.noPrefixCaching
	cfg.EnablePrefixCaching = &pc
	for _, m := range x.loraModules {
		mods, err := parseLoRAModules(m)
		if err != nil {
			return Config{}, ignored, err
		}
		cfg.LoRAModules = append(cfg.LoRAModules, mods...)
	}
	if x.kvEventsConfig != "" {
		var kc struct {
			Enable   bool   `json:"enable_kv_cache_events"`
			Endpoint string `json:"endpoint"`
			Topic    string `json:"topic"`
		}
		if err := json.Unmarshal([]byte(x.kvEventsConfig), &kc); err != nil {
			return Config{}, ignored, fmt.Errorf("--kv-events-config: %w", err)
		}
		if kc.Enable {
			cfg.KVEventsEndpoint = kc.Endpoint
			if cfg.KVEventsEndpoint == "" {
				cfg.KVEventsEndpoint = "tcp://*:5557"
			}
			cfg.KVEventsTopic = kc.Topic
		}
	}
	if x.kvTransferConfig != "" {
		if err := applyKVTransferConfig(&cfg, fs.Changed("kv-role"), x.kvTransferConfig); err != nil {
			return Config{}, ignored, err
		}
	}
	return cfg, ignored, nil
}

// applyKVTransferConfig maps vLLM's --kv-transfer-config onto the
// simulator's connector and role; an explicit --kv-role wins.
func applyKVTransferConfig(cfg *Config, roleSet bool, raw string) error {
	var kc struct {
		Connector string `json:"kv_connector"`
		Role      string `json:"kv_role"`
		Policy    string `json:"kv_load_failure_policy"`
	}
	if err := json.Unmarshal([]byte(raw), &kc); err != nil {
		return fmt.Errorf("--kv-transfer-config: %w", err)
	}
	if cfg.KVConnector == "" {
		switch {
		case strings.HasPrefix(kc.Connector, "LMCache"):
			cfg.KVConnector = ConnectorLMCache
		case kc.Connector != "":
			// Nixl, Mooncake, P2pNccl and the multi-connector all move KV
			// for requests that carry kv_transfer_params.
			cfg.KVConnector = ConnectorNixl
		}
	}
	if kc.Policy != "" {
		cfg.KVLoadFailurePolicy = kc.Policy
	}
	if !roleSet {
		switch kc.Role {
		case "kv_producer":
			cfg.KVRole = RolePrefill
		case "kv_consumer":
			cfg.KVRole = RoleDecode
		case "kv_both", "":
			cfg.KVRole = RoleBoth
		default:
			return fmt.Errorf("--kv-transfer-config: kv_role must be kv_producer, kv_consumer or kv_both, got %q", kc.Role)
		}
	}
	return nil
}

// multiValueFlags take several words after one flag, as vLLM and
// llm-d-inference-sim accept them (argparse nargs="+").
var multiValueFlags = map[string]bool{"--served-model-name": true, "--lora-modules": true}

// expandMultiValue rewrites "--flag a b" into "--flag a --flag b" for
// multiValueFlags. Every word up to the next flag is a value, so a
// positional MODEL must come first, as in `vllm serve MODEL --served-model-name x y`.
func expandMultiValue(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if !multiValueFlags[a] {
			continue
		}
		first := true
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			if !first {
				out = append(out, a)
			}
			out = append(out, args[i])
			first = false
		}
	}
	return out
}

// millis is a duration flag that also accepts a bare number of
// milliseconds, the unit llm-d-inference-sim uses.
type millis time.Duration

func (m *millis) String() string { return time.Duration(*m).String() }
func (m *millis) Type() string   { return "ms|duration" }
func (m *millis) Set(v string) error {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		*m = millis(time.Duration(n * float64(time.Millisecond)))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want milliseconds or a duration, got %q", v)
	}
	*m = millis(d)
	return nil
}

// splitUnknown separates flags the set does not define (with their values)
// from the rest.
func splitUnknown(fs *pflag.FlagSet, args []string) (known, unknown []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			known = append(known, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			known = append(known, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		var f *pflag.Flag
		if strings.HasPrefix(a, "--") {
			f = fs.Lookup(name)
		} else if len(name) == 1 {
			f = fs.ShorthandLookup(name)
		}
		if f != nil {
			known = append(known, a)
			if !hasValue && f.Value.Type() != "bool" && i+1 < len(args) {
				i++
				known = append(known, args[i])
			}
			continue
		}
		unknown = append(unknown, a)
		// An unknown flag's value is the next word unless that is a flag.
		if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			unknown = append(unknown, args[i])
		}
	}
	return known, unknown
}

// parseLoRAModules accepts llm-d's JSON object form and vLLM's name=path
// form (several space-separated in one value).
func parseLoRAModules(v string) ([]LoRAModule, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "{") {
		var m LoRAModule
		if err := json.Unmarshal([]byte(v), &m); err != nil || m.Name == "" {
			return nil, fmt.Errorf("--lora-modules %q: want {\"name\":..,\"path\":..}", v)
		}
		return []LoRAModule{m}, nil
	}
	var out []LoRAModule
	for _, part := range strings.Fields(v) {
		name, path, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--lora-modules %q: want name=path", part)
		}
		out = append(out, LoRAModule{Name: name, Path: path})
	}
	return out, nil
}
