package openai

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func join(segs [][]byte) []byte { return bytes.Join(segs, nil) }

func TestParse(t *testing.T) {
	cases := []struct {
		name, body string
		wantErr    string
		model      string
		stream     bool
		usage      bool
		prompt     string
	}{
		{name: "chat", body: `{"model":"m","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hi"}]}`, model: "m", prompt: "system: be nice\nuser: hi\n"},
		{name: "parts", body: `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`, model: "m", prompt: "user: ab\n"},
		{name: "completion stream", body: `{"prompt":"once upon","stream":true,"stream_options":{"include_usage":true},"model":"x"}`, model: "x", stream: true, usage: true, prompt: "once upon"},
		{name: "escaped", body: `{"model":"m\u00e9","prompt":"a\nb"}`, model: "mé", prompt: "a\nb"},
		{name: "content before role", body: `{"messages":[{"content":"hi","x":[1,{"y":null}],"role":"user"},"tail"],"model":"m"}`, model: "m", prompt: "user: hi\ntail"},
		{name: "escaped key and surrogates", body: `{"mod\u0065l":"m","input":"\ud83d\ude00\t\"/"}`, model: "m", prompt: "\U0001F600\t\"/"},
		{name: "token ids", body: ` {"model":"m","prompt":[[1,-2.5e3],true]} `, model: "m", prompt: "[1,-2.5e3]true"},
		{name: "mismatched brackets", body: `{"model":"m","x":[}`, wantErr: "not valid JSON"},
		{name: "bad number", body: `{"model":"m","x":01}`, wantErr: "not valid JSON"},
		{name: "control char", body: "{\"model\":\"m\x01\"}", wantErr: "not valid JSON"},
		{name: "invalid after error", body: `{"model":3,`, wantErr: "not valid JSON"},
		{name: "empty", body: ``, wantErr: "empty"},
		{name: "not json", body: `{"model":`, wantErr: "not valid JSON"},
		{name: "array", body: `[{"model":"m"}]`, wantErr: "JSON object"},
		{name: "two objects", body: `{"model":"m"}{"model":"n"}`, wantErr: "not valid JSON"},
		{name: "no model", body: `{"prompt":"x"}`, wantErr: `no "model"`},
		{name: "model not string", body: `{"model":3}`, wantErr: "must be a string"},
		{name: "duplicate model", body: `{"model":"a","model":"b"}`, wantErr: "duplicate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(c.body), 1024)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Model != c.model || r.Stream != c.stream || r.IncludeUsage != c.usage || string(r.Prompt) != c.prompt {
				t.Fatalf("got model=%q stream=%v usage=%v prompt=%q", r.Model, r.Stream, r.IncludeUsage, r.Prompt)
			}
		})
	}
}

func TestPromptLimit(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	r, err := Parse([]byte(`{"model":"m","messages":[{"role":"user","content":"`+big+`"}]}`), 8192)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Prompt) != 8192 || r.PromptBytes < 200<<10 {
		t.Fatalf("prompt %d bytes, raw %d", len(r.Prompt), r.PromptBytes)
	}
}

func TestSplice(t *testing.T) {
	cases := []struct {
		name, body string
		rw         Rewrite
		want       map[string]any
	}{
		{"model only", `{"model":"route","prompt":"p"}`, Rewrite{Model: "real"}, map[string]any{"model": "real"}},
		{"inject usage", `{"model":"m","stream":true}`, Rewrite{Model: "real", ForceUsage: true}, map[string]any{"model": "real", "stream_options": map[string]any{"include_usage": true}}},
		{"usage false", `{"stream":true,"stream_options":{"include_usage":false},"model":"m"}`, Rewrite{ForceUsage: true}, map[string]any{"stream_options": map[string]any{"include_usage": true}}},
		{"other options kept", `{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":false}}`, Rewrite{ForceUsage: true}, map[string]any{"stream_options": map[string]any{"include_usage": true, "continuous_usage_stats": false}}},
		{"empty options", `{"model":"m","stream":true,"stream_options":{ }}`, Rewrite{ForceUsage: true}, map[string]any{"stream_options": map[string]any{"include_usage": true}}},
		{"null options", `{"model":"m","stream":true,"stream_options":null}`, Rewrite{ForceUsage: true}, map[string]any{"stream_options": map[string]any{"include_usage": true}}},
		{"not streaming untouched", `{"model":"m"}`, Rewrite{ForceUsage: true}, map[string]any{"model": "m", "stream_options": nil}},
		{"quote in model", `{"model":"m"}`, Rewrite{Model: `a"b`}, map[string]any{"model": `a"b`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(c.body), 0)
			if err != nil {
				t.Fatal(err)
			}
			segs, n := r.Splice([]byte(c.body), c.rw)
			out := join(segs)
			if len(out) != n {
				t.Fatalf("length %d, reported %d", len(out), n)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("rewritten body %q invalid: %v", out, err)
			}
			for k, v := range c.want {
				gb, _ := json.Marshal(got[k])
				wb, _ := json.Marshal(v)
				if string(gb) != string(wb) {
					t.Fatalf("%s = %s, want %s (body %s)", k, gb, wb, out)
				}
			}
		})
	}
}

func TestUsageChunks(t *testing.T) {
	if !IsUsageOnlyChunk([]byte(`{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}`)) {
		t.Fatal("usage chunk not detected")
	}
	if IsUsageOnlyChunk([]byte(`{"id":"x","choices":[{"delta":{"content":"a"}}],"usage":null}`)) {
		t.Fatal("content chunk detected as usage")
	}
	u := UsageOf([]byte(`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`))
	if !u.Found || u.PromptTokens != 3 || u.CompletionTokens != 4 {
		t.Fatalf("usage %+v", u)
	}
	// The null-usage shortcut agrees with a full parse.
	for body, want := range map[string]Usage{
		`{"id":"x","choices":[{"delta":{"content":"a"}}],"usage":null}`: {},
		`{"usage":null}`: {},
		`{"choices":[{"delta":{"content":"say \"usage"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`: {1, 2, true},
		`{"usage":{"prompt_tokens":5,"completion_tokens":6},"x":{"usage":null}}`:                              {5, 6, true},
		`{"x":"\"usage":null}`: {},
		`{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":8}}`: {7, 8, true},
	} {
		if got := UsageOf([]byte(body)); got != want {
			t.Errorf("UsageOf(%s) = %+v, want %+v", body, got, want)
		}
	}
}

// FuzzParse checks that parsing never panics and that a rewritten body is
// valid JSON with the new model.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":false}}`,
		`{"model":"m","stream":true,"stream_options":{}}`,
		`{"model":"m","prompt":["a","b"],"stream":true}`,
		`{"model":"m","prompt":[[1,2,3]]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		`{"model":"\u0041","stream":true,"stream_options":null}`,
		`[]`, `{}`, `{"model":1}`, `"a\\\"b\\"`, `"ctl` + "\x01" + `"`,
		`{"model":"m","messages":[{"role":"user","content":"x\\\\\"\ny"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 0 && body[0] == '"' {
			checkStr(t, body)
			v := scanner{b: body}
			if esc, ok := v.str(); ok {
				tr := scanner{b: body, trusted: true}
				if tesc, tok := tr.str(); !tok || tr.i != v.i || tesc != esc {
					t.Fatalf("trusted skip of %q ends at %d (esc %v), validating scan at %d (esc %v)", body, tr.i, tesc, v.i, esc)
				}
			}
		}
		r, err := Parse(body, 256)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("Parse accepted invalid JSON %q", body)
		}
		if len(r.Prompt) > 256 {
			t.Fatalf("prompt %d bytes over limit", len(r.Prompt))
		}
		segs, n := r.Splice(body, Rewrite{Model: "rewritten", ForceUsage: true})
		out := join(segs)
		if len(out) != n {
			t.Fatalf("length mismatch")
		}
		r2, err := Parse(out, 0)
		if err != nil {
			t.Fatalf("rewritten body %q does not parse: %v (from %q)", out, err, body)
		}
		if r2.Model != "rewritten" {
			t.Fatalf("model %q after rewrite", r2.Model)
		}
		if r.Stream && !r2.IncludeUsage {
			t.Fatalf("usage not forced in %q", out)
		}
		// The prefill rewrite of the PD connectors.
		segs, n = r.Splice(body, Rewrite{Model: "p", Remove: []string{"stream", "stream_options"},
			Set: []Member{{Name: "max_tokens", Value: []byte("1")}, {Name: "kv_transfer_params", Value: []byte(`{"a":1}`)}}})
		out = join(segs)
		if len(out) != n {
			t.Fatalf("length mismatch")
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("prefill body %q invalid: %v (from %q)", out, err, body)
		}
		if _, ok := m["stream"]; ok {
			t.Fatalf("stream kept in %q", out)
		}
		if string(m["max_tokens"]) != "1" || string(m["kv_transfer_params"]) != `{"a":1}` {
			t.Fatalf("members not set in %q", out)
		}
	})
}

func TestSpliceMembers(t *testing.T) {
	prefill := Rewrite{Remove: []string{"stream", "stream_options"}, Set: []Member{
		{Name: "max_tokens", Value: []byte("1")}, {Name: "max_completion_tokens", Value: []byte("1"), IfPresent: true}}}
	cases := []struct {
		name, body string
		rw         Rewrite
		want       string // compact JSON of the result
	}{
		{"removed last two", `{"model":"m","a":1,"stream":true,"stream_options":{"include_usage":true}}`, prefill,
			`{"max_tokens":1,"model":"m","a":1}`},
		{"removed first two", `{"stream":true, "stream_options":{} ,"model":"m"}`, prefill, `{"max_tokens":1,"model":"m"}`},
		{"removed in the middle", `{"model":"m","stream":true,"max_tokens":99,"stream_options":null,"x":[1]}`, prefill,
			`{"model":"m","max_tokens":1,"x":[1]}`},
		{"if present", `{"model":"m","max_completion_tokens":50}`, prefill, `{"max_tokens":1,"model":"m","max_completion_tokens":1}`},
		{"model kept and rewritten", `{"model":"m"}`, Rewrite{Model: "real", Remove: []string{"model"}}, `{"model":"real"}`},
		{"replace object", `{"model":"m","kv_transfer_params":{"old":true}}`,
			Rewrite{Set: []Member{{Name: "kv_transfer_params", Value: []byte(`{"new":1}`)}}}, `{"model":"m","kv_transfer_params":{"new":1}}`},
		{"usage still forced", `{"model":"m","stream":true}`, Rewrite{ForceUsage: true, Set: []Member{{Name: "bootstrap_room", Value: []byte("7")}}},
			`{"stream_options":{"include_usage":true},"bootstrap_room":7,"model":"m","stream":true}`},
		{"escaped key", `{"model":"m","str\u0065am":true}`, prefill, `{"max_tokens":1,"model":"m"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(c.body), 0)
			if err != nil {
				t.Fatal(err)
			}
			segs, n := r.Splice([]byte(c.body), c.rw)
			out := join(segs)
			if len(out) != n {
				t.Fatalf("length %d, reported %d", len(out), n)
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, out); err != nil {
				t.Fatalf("rewritten body %q invalid: %v", out, err)
			}
			if buf.String() != c.want {
				t.Fatalf("got  %s\nwant %s", buf.String(), c.want)
			}
		})
	}
}
