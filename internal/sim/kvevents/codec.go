package kvevents

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Encoding selects how structs are laid out in msgpack.
type Encoding int

const (
	// Positional is msgspec's array_like layout, used by vLLM releases that
	// declare their event structs array_like (and by llm-d's consumers).
	Positional Encoding = iota
	// Keyed is msgspec's default map layout with a "type" tag field.
	Keyed
)

// Codec encodes batches. IntHashes sends block hashes as 64-bit integers
// (vLLM's VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES) instead of bytes.
type Codec struct {
	Encoding  Encoding
	IntHashes bool
}

// Encode returns the msgpack payload of a batch.
func (c Codec) Encode(b Batch) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	w := writer{enc: enc, c: c}
	w.batch(b)
	if w.err != nil {
		return nil, fmt.Errorf("encode kv event batch: %w", w.err)
	}
	return buf.Bytes(), nil
}

// writer accumulates the first error so the layout code stays linear.
type writer struct {
	enc *msgpack.Encoder
	c   Codec
	err error
}

func (w *writer) do(err error) {
	if w.err == nil {
		w.err = err
	}
}

// fields writes a struct header: an array of n (plus the tag) or a map.
func (w *writer) header(n int, tag string) {
	extra := 0
	if tag != "" {
		extra = 1
	}
	if w.c.Encoding == Positional {
		w.do(w.enc.EncodeArrayLen(n + extra))
		if tag != "" {
			w.do(w.enc.EncodeString(tag))
		}
		return
	}
	w.do(w.enc.EncodeMapLen(n + extra))
	if tag != "" {
		w.do(w.enc.EncodeString("type"))
		w.do(w.enc.EncodeString(tag))
	}
}

func (w *writer) key(name string) {
	if w.c.Encoding == Keyed {
		w.do(w.enc.EncodeString(name))
	}
}

func (w *writer) batch(b Batch) {
	n := 2
	if b.DataParallelRank != nil {
		n = 3
	}
	w.header(n, "")
	w.key("ts")
	w.do(w.enc.EncodeFloat64(b.TS))
	w.key("events")
	w.do(w.enc.EncodeArrayLen(len(b.Events)))
	for _, e := range b.Events {
		w.event(e)
	}
	if b.DataParallelRank != nil {
		w.key("data_parallel_rank")
		w.do(w.enc.EncodeInt(int64(*b.DataParallelRank)))
	}
}

func (w *writer) event(e Event) {
	switch e := e.(type) {
	case BlockStored:
		w.header(7, e.eventTag())
		w.key("block_hashes")
		w.hashes(e.BlockHashes)
		w.key("parent_block_hash")
		w.hash(e.ParentBlockHash)
		w.key("token_ids")
		w.do(w.enc.EncodeArrayLen(len(e.TokenIDs)))
		for _, t := range e.TokenIDs {
			w.do(w.enc.EncodeInt(int64(t)))
		}
		w.key("block_size")
		w.do(w.enc.EncodeInt(int64(e.BlockSize)))
		w.key("lora_id")
		if e.LoRAID == nil {
			w.do(w.enc.EncodeNil())
		} else {
			w.do(w.enc.EncodeInt(int64(*e.LoRAID)))
		}
		w.key("medium")
		w.optString(e.Medium)
		w.key("lora_name")
		w.optString(e.LoRAName)
	case BlockRemoved:
		w.header(2, e.eventTag())
		w.key("block_hashes")
		w.hashes(e.BlockHashes)
		w.key("medium")
		w.optString(e.Medium)
	case AllBlocksCleared:
		w.header(0, e.eventTag())
	default:
		w.do(fmt.Errorf("unknown event type %T", e))
	}
}

func (w *writer) optString(s string) {
	if s == "" {
		w.do(w.enc.EncodeNil())
		return
	}
	w.do(w.enc.EncodeString(s))
}

func (w *writer) hashes(hs []BlockHash) {
	w.do(w.enc.EncodeArrayLen(len(hs)))
	for _, h := range hs {
		w.hash(h)
	}
}

func (w *writer) hash(h BlockHash) {
	switch {
	case h == nil:
		w.do(w.enc.EncodeNil())
	case w.c.IntHashes:
		w.do(w.enc.EncodeUint(h.Uint64()))
	default:
		w.do(w.enc.EncodeBytes(h))
	}
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed kv event batch")

// Decode parses a msgpack payload in either layout. Block hashes may alias
// payload.
func Decode(payload []byte) (Batch, error) {
	if b, err := decodeFast(payload); err == nil {
		return b, nil
	}
	return decodeGeneric(payload)
}

// decodeGeneric parses any msgpack payload into interfaces first; it is the
// reference decodeFast is tested against.
func decodeGeneric(payload []byte) (Batch, error) {
	var raw any
	if err := msgpack.Unmarshal(payload, &raw); err != nil {
		return Batch{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return decodeBatch(raw)
}

func decodeBatch(raw any) (Batch, error) {
	var b Batch
	var ts, events, rank any
	switch v := raw.(type) {
	case []any:
		if len(v) < 2 {
			return b, fmt.Errorf("%w: batch has %d fields", ErrMalformed, len(v))
		}
		ts, events = v[0], v[1]
		if len(v) > 2 {
			rank = v[2]
		}
	case map[string]any:
		ts, events, rank = v["ts"], v["events"], v["data_parallel_rank"]
	default:
		return b, fmt.Errorf("%w: batch is %T", ErrMalformed, raw)
	}
	f, ok := asFloat(ts)
	if !ok {
		return b, fmt.Errorf("%w: ts is %T", ErrMalformed, ts)
	}
	b.TS = f
	if r, ok := asInt(rank); ok {
		b.DataParallelRank = &r
	}
	list, ok := events.([]any)
	if !ok {
		return b, fmt.Errorf("%w: events is %T", ErrMalformed, events)
	}
	for i, e := range list {
		ev, err := decodeEvent(e)
		if err != nil {
			return b, fmt.Errorf("event %d: %w", i, err)
		}
		b.Events = append(b.Events, ev)
	}
	return b, nil
}

// fieldReader reads struct fields by position or by name.
type fieldReader struct {
	pos   []any
	named map[string]any
}

func (r fieldReader) get(i int, name string) any {
	if r.named != nil {
		return r.named[name]
	}
	if i < len(r.pos) {
		return r.pos[i]
	}
	return nil
}

func decodeEvent(raw any) (Event, error) {
	var tag string
	var r fieldReader
	switch v := raw.(type) {
	case []any:
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: empty event", ErrMalformed)
		}
		tag, _ = v[0].(string)
		r.pos = v[1:]
	case map[string]any:
		tag, _ = v["type"].(string)
		r.named = v
	default:
		return nil, fmt.Errorf("%w: event is %T", ErrMalformed, raw)
	}
	switch tag {
	case "BlockStored":
		hashes, err := asHashes(r.get(0, "block_hashes"))
		if err != nil {
			return nil, err
		}
		parent, err := asHash(r.get(1, "parent_block_hash"))
		if err != nil {
			return nil, err
		}
		tokens, err := asInts(r.get(2, "token_ids"))
		if err != nil {
			return nil, err
		}
		size, _ := asInt(r.get(3, "block_size"))
		ev := BlockStored{BlockHashes: hashes, ParentBlockHash: parent, TokenIDs: tokens, BlockSize: size}
		if id, ok := asInt(r.get(4, "lora_id")); ok {
			ev.LoRAID = &id
		}
		ev.Medium, _ = r.get(5, "medium").(string)
		ev.LoRAName, _ = r.get(6, "lora_name").(string)
		return ev, nil
	case "BlockRemoved":
		hashes, err := asHashes(r.get(0, "block_hashes"))
		if err != nil {
			return nil, err
		}
		medium, _ := r.get(1, "medium").(string)
		return BlockRemoved{BlockHashes: hashes, Medium: medium}, nil
	case "AllBlocksCleared":
		return AllBlocksCleared{}, nil
	default:
		return nil, fmt.Errorf("%w: unknown event tag %q", ErrMalformed, tag)
	}
}

func asHashes(v any) ([]BlockHash, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: block_hashes is %T", ErrMalformed, v)
	}
	out := make([]BlockHash, 0, len(list))
	for _, x := range list {
		h, err := asHash(x)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func asHash(v any) (BlockHash, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return BlockHash(x), nil
	case string:
		return BlockHash(x), nil
	}
	if u, ok := asUint64(v); ok {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], u)
		return BlockHash(buf[:]), nil
	}
	return nil, fmt.Errorf("%w: block hash is %T", ErrMalformed, v)
}

func asInts(v any) ([]int, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: token_ids is %T", ErrMalformed, v)
	}
	out := make([]int, 0, len(list))
	for _, x := range list {
		n, ok := asInt(x)
		if !ok {
			return nil, fmt.Errorf("%w: token id is %T", ErrMalformed, x)
		}
		out = append(out, n)
	}
	return out, nil
}

func asInt(v any) (int, bool) {
	u, ok := asUint64(v)
	return int(u), ok
}

// asUint64 accepts every integer width msgpack decodes to; negative values
// keep their two's-complement bits, as Python's masking does.
func asUint64(v any) (uint64, bool) {
	switch x := v.(type) {
	case int8:
		return uint64(x), true
	case int16:
		return uint64(x), true
	case int32:
		return uint64(x), true
	case int64:
		return uint64(x), true
	case int:
		return uint64(x), true
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case uint:
		return uint64(x), true
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if u, ok := asUint64(v); ok {
		return float64(u), true
	}
	return 0, false
}
