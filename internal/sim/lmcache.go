package sim

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/sim/engine"
	"github.com/kthena/kthena/internal/sim/kvcache"
)

// The LMCache connector. A real deployment runs vLLM with
// LMCacheConnectorV1: the prefill engine saves the KV of every prompt it
// computes to a shared store, in chunks of chunk_size tokens keyed by a
// hash of the prefix; a decode engine given the same prompt (as a plain
// request, the router's lmcache connector) looks the prompt's chunks up
// and loads the leading ones the store has instead of recomputing them.
//
// The simulator keeps the store as a set of chunk keys. Every engine serves
// one on /sim/v1/lmcache/{put,lookup}; engines pointed at the same
// --lmcache-url share it. A chunk's key is the chained block hash of its
// last block, so it names the whole prefix (engines sharing a store must
// use the same block size and hash seed, as LMCache needs the same model).
// Only full chunks are stored.

// lmcacheMaxChunks bounds a store (FIFO eviction): 1M chunks of 256 tokens
// is the KV of 256M tokens, far more than a test or benchmark produces.
const lmcacheMaxChunks = 1 << 20

type lmcacheStore struct {
	mu     sync.Mutex
	chunks map[kvcache.Hash]struct{}
	order  []kvcache.Hash
	max    int
}

func newLMCacheStore(maxChunks int) *lmcacheStore {
	return &lmcacheStore{chunks: map[kvcache.Hash]struct{}{}, max: maxChunks}
}

// put stores keys and reports how many were new.
func (s *lmcacheStore) put(keys []kvcache.Hash) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := s.chunks[k]; ok {
			continue
		}
		s.chunks[k] = struct{}{}
		s.order = append(s.order, k)
		n++
	}
	for len(s.order) > s.max {
		delete(s.chunks, s.order[0])
		s.order = s.order[1:]
	}
	return n
}

// lookup counts the leading keys the store holds.
func (s *lmcacheStore) lookup(keys []kvcache.Hash) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range keys {
		if _, ok := s.chunks[k]; !ok {
			return i
		}
	}
	return len(keys)
}

type lmcacheRequest struct {
	Chunks []string `json:"chunks"`
}

func decodeChunkKeys(hexKeys []string) ([]kvcache.Hash, error) {
	out := make([]kvcache.Hash, len(hexKeys))
	for i, h := range hexKeys {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != len(out[i]) {
			return nil, fmt.Errorf("chunk %d: want %d hex-encoded bytes", i, len(out[i]))
		}
		copy(out[i][:], b)
	}
	return out, nil
}

func (s *lmcacheStore) readKeys(w http.ResponseWriter, r *http.Request) ([]kvcache.Hash, bool) {
	var req lmcacheRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad lmcache request: " + err.Error()})
		return nil, false
	}
	keys, err := decodeChunkKeys(req.Chunks)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return nil, false
	}
	return keys, true
}

func (s *lmcacheStore) handlePut(w http.ResponseWriter, r *http.Request) {
	if keys, ok := s.readKeys(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]int{"stored": s.put(keys)})
	}
}

func (s *lmcacheStore) handleLookup(w http.ResponseWriter, r *http.Request) {
	if keys, ok := s.readKeys(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]int{"hits": s.lookup(keys)})
	}
}

// Handler serves a store on its own (kthena-sim lmcache-server).
func (s *lmcacheStore) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /sim/v1/lmcache/put", s.handlePut)
	m.HandleFunc("POST /sim/v1/lmcache/lookup", s.handleLookup)
	m.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return m
}

// NewLMCacheServer is a standalone shared LMCache store for engines started
// with --kv-connector lmcache --lmcache-url pointing at it.
func NewLMCacheServer() http.Handler { return newLMCacheStore(lmcacheMaxChunks).Handler() }

// lmcacheKeys are the keys of the prompt's full chunks, in order.
func (e *Engine) lmcacheKeys(prompt []int, lora string) []kvcache.Hash {
	var extra []string
	if lora != "" {
		extra = []string{lora}
	}
	per := e.cfg.LMCacheChunkSize / e.cfg.BlockSize
	hashes := e.core.Hasher().Chain(prompt, e.cfg.BlockSize, extra)
	keys := make([]kvcache.Hash, 0, len(hashes)/per)
	for i := per; i <= len(hashes); i += per {
		keys = append(keys, hashes[i-1])
	}
	return keys
}

// lmcacheCall runs one store operation, on this engine's store or over
// HTTP on the shared one.
func (e *Engine) lmcacheCall(ctx context.Context, op string, keys []kvcache.Hash) (int, error) {
	if e.cfg.LMCacheURL == "" {
		if op == "put" {
			return e.lmstore.put(keys), nil
		}
		return e.lmstore.lookup(keys), nil
	}
	req := lmcacheRequest{Chunks: make([]string, len(keys))}
	for i, k := range keys {
		req.Chunks[i] = hex.EncodeToString(k[:])
	}
	body, _ := json.Marshal(req)
	url := strings.TrimSuffix(e.cfg.LMCacheURL, "/") + "/sim/v1/lmcache/" + op
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := e.pd.http.Do(hreq)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Stored int    `json:"stored"`
		Hits   int    `json:"hits"`
		Error  string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("lmcache %s at %s: %d %s", op, url, resp.StatusCode, out.Error)
	}
	if op == "put" {
		return out.Stored, nil
	}
	return out.Hits, nil
}

// lmcacheSaves and lmcacheLoads follow LMCache's roles: a producer only
// saves, a consumer only loads, kv_both does both.
func (e *Engine) lmcacheSaves() bool {
	return e.cfg.KVConnector == ConnectorLMCache && e.cfg.KVRole != RoleDecode
}

func (e *Engine) lmcacheLoads() bool {
	return e.cfg.KVConnector == ConnectorLMCache && e.cfg.KVRole != RolePrefill
}

// lmcacheSave stores the prompt's chunks once its prefill is done.
func (e *Engine) lmcacheSave(ctx context.Context, prompt []int, lora string) {
	keys := e.lmcacheKeys(prompt, lora)
	if len(keys) == 0 {
		return
	}
	if _, err := e.lmcacheCall(ctx, "put", keys); err != nil {
		e.log.V(1).Info("lmcache store failed", "err", err.Error())
		return
	}
	e.simm.lmcacheStored.Add(float64(len(keys) * e.cfg.LMCacheChunkSize))
}

// lmcacheLoad looks the prompt up in the store and, when the store has
// more of it than the local prefix cache, marks that part as loaded: the
// request waits the modelled transfer of what the local cache lacks
// (without holding up the running batch) and prefills only the rest. A
// store that cannot be reached means recomputing, as LMCache falls back.
func (e *Engine) lmcacheLoad(ctx context.Context, req *engine.Request) {
	bs := e.cfg.BlockSize
	usable := (len(req.Prompt) - 1) / bs * bs // vLLM computes the last token
	local := e.core.CachedPrefixTokens(req.Prompt, req.LoRA)
	keys := e.lmcacheKeys(req.Prompt, req.LoRA)
	if min(len(keys)*e.cfg.LMCacheChunkSize, usable) <= local {
		return
	}
	hits, err := e.lmcacheCall(ctx, "lookup", keys)
	if err != nil {
		e.log.V(1).Info("lmcache lookup failed; recomputing", "err", err.Error())
		e.recordTransferFailure(ConnectorLMCache)
		return
	}
	ext := min(hits*e.cfg.LMCacheChunkSize, usable)
	if ext <= local {
		return
	}
	transfer := e.profile.KVTransferTime(ext - local)
	req.ExternalTokens, req.ReadyAfter = ext, transfer
	e.recordTransfer(ConnectorLMCache, ext-local, transfer)
}
