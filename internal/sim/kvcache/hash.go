// Package kvcache is a paged KV cache with hash-based prefix caching, as
// vLLM's V1 block manager does it: fixed-size blocks, full blocks keyed by a
// chained hash of their tokens, reference counts, and an LRU queue of free
// blocks whose cached contents survive until the block is reused.
package kvcache

import (
	"crypto/sha256"
	"encoding/binary"
)

// Hash identifies a full block by its tokens and everything before them.
type Hash [sha256.Size]byte

// DefaultSeed is the seed vLLM derives the root hash from when
// PYTHONHASHSEED is unset and the hash algorithm is cryptographic.
const DefaultSeed = "vllm-none-hash"

// Hasher computes vLLM's "sha256_cbor" block hashes: SHA-256 over the
// canonical CBOR encoding of (parent hash, token IDs, extra keys). This is
// the reproducible, language-independent algorithm vLLM offers; with the same
// seed a consumer can recompute the hashes a real engine reports.
type Hasher struct {
	root Hash
}

// NewHasher derives the root (the parent of every first block) from seed:
// SHA-256 of the CBOR text string.
func NewHasher(seed string) Hasher {
	if seed == "" {
		seed = DefaultSeed
	}
	buf := appendCBORHead(nil, 3, uint64(len(seed)))
	buf = append(buf, seed...)
	return Hasher{root: sha256.Sum256(buf)}
}

// Root is the parent hash of the first block of every sequence.
func (h Hasher) Root() Hash { return h.root }

// Block hashes one full block. extra holds the block's extra keys (vLLM
// puts the LoRA adapter name there); nil encodes as CBOR null.
func (h Hasher) Block(parent Hash, tokens []int, extra []string) Hash {
	buf := make([]byte, 0, 48+len(tokens)*5)
	buf = append(buf, 0x83) // array of 3
	buf = appendCBORHead(buf, 2, uint64(len(parent)))
	buf = append(buf, parent[:]...)
	buf = appendCBORHead(buf, 4, uint64(len(tokens)))
	for _, t := range tokens {
		if t < 0 {
			buf = appendCBORHead(buf, 1, uint64(-1-t))
		} else {
			buf = appendCBORHead(buf, 0, uint64(t))
		}
	}
	if extra == nil {
		buf = append(buf, 0xf6) // null
	} else {
		buf = appendCBORHead(buf, 4, uint64(len(extra)))
		for _, s := range extra {
			buf = appendCBORHead(buf, 3, uint64(len(s)))
			buf = append(buf, s...)
		}
	}
	return sha256.Sum256(buf)
}

// Chain hashes every full block of tokens, in order. extra applies to all
// blocks (the LoRA name); pass nil for the base model.
func (h Hasher) Chain(tokens []int, blockSize int, extra []string) []Hash {
	n := len(tokens) / blockSize
	out := make([]Hash, 0, n)
	parent := h.root
	for i := 0; i < n; i++ {
		parent = h.Block(parent, tokens[i*blockSize:(i+1)*blockSize], extra)
		out = append(out, parent)
	}
	return out
}

// appendCBORHead writes a CBOR major type with its argument in the shortest
// form, as canonical (deterministic) CBOR requires.
func appendCBORHead(buf []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(buf, m|byte(n))
	case n <= 0xff:
		return append(buf, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(buf, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(buf, m|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(buf, m|27), n)
	}
}
