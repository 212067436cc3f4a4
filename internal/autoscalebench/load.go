package autoscalebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Load replays arrivals as streaming chat requests and measures each one's
// time to first token at the client.
type Load struct {
	// URL is the router's base URL.
	URL   string
	Model string
	// MaxTokens is each request's output length (ignore_eos, so exact).
	MaxTokens int
	// Timeout bounds one request (the router may hold it for a cold start).
	Timeout time.Duration
	Client  *http.Client
}

// NewClient is an HTTP client for open-loop load: one connection per
// in-flight request, kept for reuse.
func NewClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true,
	}}
}

// Run sends one request at start+arrivals[i] each, concurrently, and
// returns them in send order once all have finished. progress, if not
// nil, is called with each finished request.
func (l Load) Run(ctx context.Context, start time.Time, arrivals []time.Duration, progress func(Request)) []Request {
	out := make([]Request, len(arrivals))
	var wg sync.WaitGroup
	for i, at := range arrivals {
		if d := time.Until(start.Add(at)); d > 0 {
			select {
			case <-ctx.Done():
				for k := i; k < len(arrivals); k++ {
					out[k] = Request{Offset: arrivals[k], Err: "not sent: " + ctx.Err().Error()}
				}
				wg.Wait()
				return out
			case <-time.After(d):
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := l.one(ctx, i)
			r.Offset = r.Sent.Sub(start)
			out[i] = r
			if progress != nil {
				progress(r)
			}
		}()
	}
	wg.Wait()
	return out
}

func requestID(i int) string { return fmt.Sprintf("autoscale-bench-%d", i) }

type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
}

func (l Load) one(ctx context.Context, i int) Request {
	body, _ := json.Marshal(map[string]any{
		"model":      l.Model,
		"messages":   []map[string]string{{"role": "user", "content": fmt.Sprintf("request %d: summarise the day's traffic in a few words", i)}},
		"max_tokens": l.MaxTokens, "ignore_eos": true, "stream": true,
	})
	ctx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	r := Request{Sent: time.Now(), ID: requestID(i)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.URL+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	// The router logs it, so that its hold of this request can be found.
	req.Header.Set("X-Request-Id", requestID(i))
	resp, err := l.Client.Do(req)
	if err != nil {
		r.Err = err.Error()
		r.Latency = time.Since(r.Sent)
		return r
	}
	defer func() { _ = resp.Body.Close() }()
	r.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		r.Err = strings.TrimSpace(string(b))
		r.Latency = time.Since(r.Sent)
		return r
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	done := false
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		if string(data) == "[DONE]" {
			done = true
			break
		}
		if r.TTFT == 0 {
			var c chunk
			if json.Unmarshal(data, &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
				r.TTFT = time.Since(r.Sent)
			}
		}
	}
	r.Latency = time.Since(r.Sent)
	switch {
	case sc.Err() != nil:
		r.Err = "stream: " + sc.Err().Error()
	case !done:
		r.Err = "stream ended without [DONE]"
	case r.TTFT == 0:
		r.Err = "no token in the stream"
	default:
		r.OK = true
	}
	return r
}
