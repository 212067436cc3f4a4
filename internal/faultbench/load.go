package faultbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Outcome is what a client saw of one request.
type Outcome int

const (
	// Succeeded: a complete answer (a non-streamed 200 with choices, or a
	// stream that ended with [DONE] and no error event).
	Succeeded Outcome = iota
	// FailedVisibly: an error the client can act on: an HTTP error status,
	// an SSE error event, or a refused connection.
	FailedVisibly
	// Lost: no answer (hung past the deadline) or a stream cut without an
	// error event.
	Lost
)

func (o Outcome) String() string {
	return [...]string{"succeeded", "failed", "lost"}[o]
}

// Result is one request.
type Result struct {
	Start    time.Time
	Latency  time.Duration
	Stream   bool
	Outcome  Outcome
	Detail   string
	HTTPCode int
}

// Load sends chat requests in a closed loop from Clients workers, every
// other one streamed, until ctx ends.
type Load struct {
	URL       string // router base URL
	Model     string
	Clients   int
	MaxTokens int
	// Deadline bounds one request; past it the request counts as lost.
	Deadline time.Duration
}

// Run returns every request's result once ctx ends and the requests in
// flight have finished.
func (l Load) Run(ctx context.Context) []Result {
	var mu sync.Mutex
	var out []Result
	var wg sync.WaitGroup
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: l.Clients}}
	for w := range l.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				r := l.one(hc, (w+i)%2 == 0, fmt.Sprintf("client %d request %d", w, i))
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
				if r.Outcome != Succeeded {
					// A refused connection fails at once; do not spin.
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// one sends a request; it is not tied to the load's context, so a request
// in flight when the load stops still gets its outcome.
func (l Load) one(hc *http.Client, stream bool, prompt string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), l.Deadline)
	defer cancel()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}],"max_tokens":%d,"stream":%v}`, l.Model, prompt, l.MaxTokens, stream)
	res := Result{Start: time.Now(), Stream: stream}
	finish := func(o Outcome, detail string) Result {
		res.Latency, res.Outcome, res.Detail = time.Since(res.Start), o, detail
		return res
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return finish(FailedVisibly, err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return finish(Lost, "no answer before the deadline")
		}
		return finish(FailedVisibly, err.Error()) // refused or reset before any answer
	}
	defer resp.Body.Close()
	res.HTTPCode = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return finish(FailedVisibly, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b))))
	}
	if !stream {
		var v struct {
			Choices []json.RawMessage `json:"choices"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Choices) == 0 {
			if ctx.Err() != nil {
				return finish(Lost, "answer cut at the deadline")
			}
			return finish(Lost, fmt.Sprintf("200 without a complete answer: %v", err))
		}
		return finish(Succeeded, "")
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			return finish(Succeeded, "")
		}
		if strings.HasPrefix(data, `{"error"`) {
			return finish(FailedVisibly, "SSE error event: "+data)
		}
	}
	if ctx.Err() != nil {
		return finish(Lost, "stream hung past the deadline")
	}
	return finish(Lost, fmt.Sprintf("stream cut without [DONE] or an error event (%v)", sc.Err()))
}
