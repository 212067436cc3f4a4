package sim

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every POST endpoint answers malformed or mistyped bodies with a 4xx in
// the engine's error shape: never a 5xx, a panic or a hang.
func TestGarbageNeverBreaksTheServer(t *testing.T) {
	f := startFleet(t, fastConfig(nil), fastConfig(func(c *Config) { c.Engine = SGLang; c.KVRole = RoleDecode }))
	bodies := []string{"", "{", "null", "[]", `"text"`, "42", `{"model":null}`, `{"model":[1]}`,
		`{"model":"` + DefaultModel + `","messages":"hi"}`, `{"model":"` + DefaultModel + `","prompt":{"a":1}}`,
		`{"model":"` + DefaultModel + `","prompt":"x","max_tokens":"ten"}`, `{"model":"` + DefaultModel + `","prompt":"x","stop":5}`,
		`{"model":"` + DefaultModel + `","messages":[{"role":"user","content":[{"type":"image_url"}]}],"max_tokens":0}`,
		`{"model":"` + DefaultModel + `","prompt":[[1,2],[3]]}`, `{"model":"` + DefaultModel + `","prompt":"x","kv_transfer_params":"yes"}`,
		`{"model":"` + DefaultModel + `","prompt":"x","stream_options":{"include_usage":true}}`,
		`{"lora_name":5}`, `{"tokens":"abc"}`, `{"remote_engine_id":1}`}
	paths := []string{"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize", "/v1/load_lora_adapter",
		"/v1/unload_lora_adapter", "/sim/v1/cached_tokens", "/sim/v1/kv_pull"}
	for i := range f.Engines {
		for _, path := range paths {
			for _, body := range bodies {
				resp, err := http.Post(f.URL(i)+path, "application/json", bytes.NewReader([]byte(body)))
				require.NoError(t, err, "%s %q", path, body)
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				assert.Less(t, resp.StatusCode, 500, "%s %q -> %d %s", path, body, resp.StatusCode, data)
			}
		}
	}
}
