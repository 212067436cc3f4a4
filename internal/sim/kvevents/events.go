// Package kvevents holds vLLM's KV-cache event types with their wire codec
// and a ZMQ publisher and subscriber.
//
// The wire format is vLLM's: each ZMQ message has three frames, the topic,
// an 8-byte big-endian sequence number and a msgpack payload. The payload is
// an event batch (timestamp, events, optional data-parallel rank). Events are
// tagged unions named by their type: BlockStored, BlockRemoved,
// AllBlocksCleared. vLLM encodes them with msgspec either positionally
// (array_like structs: ["BlockStored", hashes, parent, ...]) or as maps
// ({"type": "BlockStored", "block_hashes": ...}); the decoder accepts both,
// so one consumer serves the simulator and real engines.
package kvevents

import "encoding/binary"

// BlockHash is a block hash as it appears on the wire: the hash bytes
// (vLLM's default), or a 64-bit integer when the engine runs with integer
// hashes (stored here as its 8 big-endian bytes).
type BlockHash []byte

// Uint64 is the low 64 bits of the hash read big-endian, the value vLLM
// sends when it converts hashes to integers. Keying on it lets a consumer
// match both encodings.
func (h BlockHash) Uint64() uint64 {
	if len(h) >= 8 {
		return binary.BigEndian.Uint64(h[len(h)-8:])
	}
	var buf [8]byte
	copy(buf[8-len(h):], h)
	return binary.BigEndian.Uint64(buf[:])
}

// Event is one of BlockStored, BlockRemoved or AllBlocksCleared.
type Event interface{ eventTag() string }

// MediumGPU is the storage tier of blocks held in accelerator memory.
const MediumGPU = "GPU"

// BlockStored reports full blocks that became reusable prefix-cache
// entries. The blocks form a chain: each block's parent is the previous one,
// the first block's parent is ParentBlockHash (nil for a sequence start).
type BlockStored struct {
	BlockHashes     []BlockHash
	ParentBlockHash BlockHash
	TokenIDs        []int
	BlockSize       int
	LoRAID          *int
	Medium          string
	LoRAName        string
}

// BlockRemoved reports blocks evicted from the cache.
type BlockRemoved struct {
	BlockHashes []BlockHash
	Medium      string
}

// AllBlocksCleared reports that the whole cache was reset.
type AllBlocksCleared struct{}

func (BlockStored) eventTag() string      { return "BlockStored" }
func (BlockRemoved) eventTag() string     { return "BlockRemoved" }
func (AllBlocksCleared) eventTag() string { return "AllBlocksCleared" }

// Batch is the payload of one message.
type Batch struct {
	TS               float64 // seconds since the Unix epoch
	Events           []Event
	DataParallelRank *int
}
