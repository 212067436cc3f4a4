package autoscalebench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

// routerEntry is what the router's access log says of one request.
type routerEntry struct {
	start time.Time
	held  time.Duration
}

// readAccessLog reads the router's access log lines of the bench's
// requests: `[<start RFC 3339>] "POST ..." ... request_id=<id> ...
// held=<ms>ms`.
func readAccessLog(path string) (map[string]routerEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	out := map[string]routerEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "[") || !strings.Contains(line, "request_id=autoscale-bench-") {
			continue
		}
		end := strings.IndexByte(line, ']')
		if end < 0 {
			continue
		}
		start, err := time.Parse(time.RFC3339Nano, line[1:end])
		if err != nil {
			continue
		}
		e := routerEntry{start: start}
		var id string
		for _, f := range strings.Fields(line[end+1:]) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			switch k {
			case "request_id":
				id = v
			case "held":
				if ms, err := strconv.ParseFloat(strings.TrimSuffix(v, "ms"), 64); err == nil {
					e.held = time.Duration(ms * float64(time.Millisecond))
				}
			}
		}
		if id != "" {
			out[id] = e
		}
	}
	return out, sc.Err()
}

// splitRelease divides each cold start's release with the router's own
// record of when it let the first held request go.
func splitRelease(cs []ColdStart, reqs []Request, log map[string]routerEntry) {
	first := map[string]Request{}
	for _, r := range reqs {
		first[r.ID] = r
	}
	for i := range cs {
		c := &cs[i]
		e, ok := log[c.Request]
		r, ok2 := first[c.Request]
		if !ok || !ok2 || e.held <= 0 || c.readyAt.IsZero() {
			continue
		}
		released := e.start.Add(e.held)
		c.RouterRelease = released.Sub(c.readyAt)
		c.EngineFirstToken = r.FirstToken().Sub(released)
		c.SplitKnown = true
	}
}
