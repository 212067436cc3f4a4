package debug

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/kvindex"
	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/kthena/kthena/internal/tokenizer"
)

type noSource struct{}

func (noSource) AllRoutes() []*networkingv1alpha1.ModelRoute   { return nil }
func (noSource) AllServers() []*networkingv1alpha1.ModelServer { return nil }
func (noSource) AllEndpoints() []*datastore.Endpoint           { return nil }

func TestKVIndexEndpoints(t *testing.T) {
	b, err := kvindex.NewBackend(kvcacheaware.IndexOptions{MaxBlocks: 1000, TierWeights: [3]float64{1, 0.5, 0.25}}, logr.Discard())
	require.NoError(t, err)
	defer b.Close()
	tok, err := tokenizer.New("")
	require.NoError(t, err)
	msgs := []tokenizer.Message{{Role: "user", Content: strings.Repeat("Tell me about the sea. ", 20)}}
	ids, err := tok.EncodeChat(msgs, true)
	require.NoError(t, err)
	hs := kvcache.NewHasher("").Chain(ids, 16, nil)
	ev := kvevents.BlockStored{BlockSize: 16, TokenIDs: ids[:len(hs)*16]}
	for _, h := range hs {
		ev.BlockHashes = append(ev.BlockHashes, kvevents.BlockHash(append([]byte(nil), h[:]...)))
	}
	b.Index().AddPod("default/a").Apply(0, kvevents.Batch{Events: []kvevents.Event{ev}})
	b.Index().AddPod("default/b")

	srv := httptest.NewServer(Handler(noSource{}, func() string { return "" }))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/debug/kvindex")
	require.NoError(t, err)
	var sizes []kvindex.Size
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&sizes))
	resp.Body.Close()
	var mine *kvindex.Size
	for i := range sizes {
		if sizes[i].MaxBlocks == 1000 {
			mine = &sizes[i]
		}
	}
	require.NotNil(t, mine)
	assert.Equal(t, len(hs), mine.Entries)
	require.Len(t, mine.Pods, 2)
	assert.Equal(t, kvindex.PodSize{Pod: "default/a", Known: true, BlockSize: 16, Blocks: len(hs)}, mine.Pods[0])

	body := `{"messages":[{"role":"user","content":"` + msgs[0].Content + `"}],"pods":["default/a","default/b"]}`
	resp, err = http.Post(srv.URL+"/debug/kvindex/probe", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	var res []kvindex.ProbeResult
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	resp.Body.Close()
	var found bool
	for _, r := range res {
		if len(r.Pods) == 2 && r.Pods[0].MatchedBlocks > 0 {
			found = true
			assert.Equal(t, len(ids), r.Tokens)
			assert.Equal(t, len(hs), r.Pods[0].MatchedBlocks)
			assert.Equal(t, len(hs)*16, r.Pods[0].MatchedTokens)
			assert.InDelta(t, 1.0, r.Pods[0].Score, 1e-9)
			assert.Zero(t, r.Pods[1].MatchedBlocks)
		}
	}
	assert.True(t, found, "%+v", res)

	resp, err = http.Post(srv.URL+"/debug/kvindex/probe", "application/json", strings.NewReader(`{"nope":1}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}
