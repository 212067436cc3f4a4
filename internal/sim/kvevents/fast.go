package kvevents

import (
	"encoding/binary"
	"errors"
	"math"
)

// errFast makes Decode fall back to the generic decoder, which accepts
// everything msgpack can express and names the problem.
var errFast = errors.New("fast path")

// decodeFast parses the msgpack forms vLLM and SGLang send straight from
// the bytes, without boxing every token ID in an interface (the generic
// path spends most of its time there). Hashes may alias payload.
func decodeFast(payload []byte) (Batch, error) {
	r := &reader{b: payload}
	b := r.batch()
	if r.err != nil || r.i != len(r.b) {
		return Batch{}, errFast
	}
	return b, nil
}

type reader struct {
	b   []byte
	i   int
	err error
}

func (r *reader) fail() { r.err = errFast }

func (r *reader) byte1() byte {
	if r.err != nil || r.i >= len(r.b) {
		r.fail()
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *reader) n(k int) []byte {
	if r.err != nil || k < 0 || r.i+k > len(r.b) {
		r.fail()
		return nil
	}
	s := r.b[r.i : r.i+k]
	r.i += k
	return s
}

func (r *reader) peek() byte {
	if r.err != nil || r.i >= len(r.b) {
		r.fail()
		return 0xc1
	}
	return r.b[r.i]
}

// container reads an array or map header: its length and whether it is a
// map.
func (r *reader) container() (int, bool) {
	c := r.byte1()
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), false
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), true
	case c == 0xdc:
		return int(binary.BigEndian.Uint16(r.n(2))), false
	case c == 0xdd:
		return int(binary.BigEndian.Uint32(r.n(4))), false
	case c == 0xde:
		return int(binary.BigEndian.Uint16(r.n(2))), true
	case c == 0xdf:
		return int(binary.BigEndian.Uint32(r.n(4))), true
	}
	r.fail()
	return 0, false
}

// raw reads a str or bin value; ok is false for nil.
func (r *reader) raw() ([]byte, bool) {
	c := r.byte1()
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return r.n(int(c & 0x1f)), true
	case c == 0xd9 || c == 0xc4:
		return r.n(int(r.byte1())), true
	case c == 0xda || c == 0xc5:
		return r.n(int(binary.BigEndian.Uint16(r.n(2)))), true
	case c == 0xdb || c == 0xc6:
		return r.n(int(binary.BigEndian.Uint32(r.n(4)))), true
	case c == 0xc0:
		return nil, false
	}
	r.fail()
	return nil, false
}

// uint reads any integer (negative ones keep their two's-complement bits);
// ok is false for nil.
func (r *reader) uint() (uint64, bool) {
	c := r.byte1()
	switch {
	case c <= 0x7f:
		return uint64(c), true
	case c >= 0xe0:
		return uint64(int64(int8(c))), true
	}
	switch c {
	case 0xc0:
		return 0, false
	case 0xcc:
		return uint64(r.byte1()), true
	case 0xcd:
		return uint64(binary.BigEndian.Uint16(r.n(2))), true
	case 0xce:
		return uint64(binary.BigEndian.Uint32(r.n(4))), true
	case 0xcf:
		return binary.BigEndian.Uint64(r.n(8)), true
	case 0xd0:
		return uint64(int64(int8(r.byte1()))), true
	case 0xd1:
		return uint64(int64(int16(binary.BigEndian.Uint16(r.n(2))))), true
	case 0xd2:
		return uint64(int64(int32(binary.BigEndian.Uint32(r.n(4))))), true
	case 0xd3:
		return binary.BigEndian.Uint64(r.n(8)), true
	}
	r.fail()
	return 0, false
}

func (r *reader) float() float64 {
	switch r.peek() {
	case 0xcb:
		r.i++
		return math.Float64frombits(binary.BigEndian.Uint64(r.n(8)))
	case 0xca:
		r.i++
		return float64(math.Float32frombits(binary.BigEndian.Uint32(r.n(4))))
	}
	u, ok := r.uint()
	if !ok {
		r.fail()
	}
	return float64(u)
}

func (r *reader) str() string {
	s, _ := r.raw()
	return string(s)
}

func (r *reader) hash() BlockHash {
	c := r.peek()
	if (c >= 0xa0 && c <= 0xbf) || (c >= 0xc4 && c <= 0xc6) || (c >= 0xd9 && c <= 0xdb) || c == 0xc0 {
		s, ok := r.raw()
		if !ok {
			return nil
		}
		return BlockHash(s)
	}
	u, _ := r.uint()
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], u)
	return BlockHash(buf[:])
}

func (r *reader) hashes() []BlockHash {
	n, isMap := r.container()
	if isMap {
		r.fail()
		return nil
	}
	out := make([]BlockHash, 0, n)
	for range n {
		if r.err != nil {
			return nil
		}
		out = append(out, r.hash())
	}
	return out
}

func (r *reader) ints() []int {
	n, isMap := r.container()
	if isMap || n > len(r.b)-r.i {
		r.fail()
		return nil
	}
	out := make([]int, n)
	for i := range out {
		u, ok := r.uint()
		if !ok {
			r.fail()
		}
		out[i] = int(u)
	}
	return out
}

func (r *reader) batch() Batch {
	var b Batch
	var seen [2]bool // ts, events: both required
	n, isMap := r.container()
	defer func() {
		if !seen[0] || !seen[1] {
			r.fail()
		}
	}()
	for i := range n {
		if r.err != nil {
			return b
		}
		field := i
		if isMap {
			switch r.str() {
			case "ts":
				field = 0
			case "events":
				field = 1
			case "data_parallel_rank":
				field = 2
			default:
				r.fail()
			}
		}
		switch field {
		case 0:
			b.TS = r.float()
			seen[0] = true
		case 1:
			seen[1] = true
			m, isMap := r.container()
			if isMap {
				r.fail()
			}
			if m > 0 {
				b.Events = make([]Event, 0, m)
			}
			for range m {
				if r.err != nil {
					return b
				}
				b.Events = append(b.Events, r.event())
			}
		case 2:
			if u, ok := r.uint(); ok {
				rank := int(u)
				b.DataParallelRank = &rank
			}
		default:
			r.fail()
		}
	}
	return b
}

// event reads one tagged event in array or map form.
func (r *reader) event() Event {
	n, isMap := r.container()
	if n == 0 {
		r.fail()
		return nil
	}
	var tag string
	names := []string{}
	if !isMap {
		tag = r.str()
		n--
	} else {
		// msgspec writes the tag first.
		if r.str() != "type" {
			r.fail()
			return nil
		}
		tag = r.str()
		n--
	}
	switch tag {
	case "BlockStored":
		names = []string{"block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium", "lora_name"}
	case "BlockRemoved":
		names = []string{"block_hashes", "medium"}
	case "AllBlocksCleared":
	default:
		r.fail()
		return nil
	}
	var st BlockStored
	var rm BlockRemoved
	for i := range n {
		if r.err != nil {
			return nil
		}
		name := ""
		if isMap {
			name = r.str()
		} else if i < len(names) {
			name = names[i]
		}
		switch {
		case name == "block_hashes" && tag == "BlockStored":
			st.BlockHashes = r.hashes()
		case name == "block_hashes":
			rm.BlockHashes = r.hashes()
		case name == "parent_block_hash":
			st.ParentBlockHash = r.hash()
		case name == "token_ids":
			st.TokenIDs = r.ints()
		case name == "block_size":
			u, _ := r.uint()
			st.BlockSize = int(u)
		case name == "lora_id":
			if u, ok := r.uint(); ok {
				id := int(u)
				st.LoRAID = &id
			}
		case name == "medium" && tag == "BlockStored":
			st.Medium = r.optStr()
		case name == "medium":
			rm.Medium = r.optStr()
		case name == "lora_name":
			st.LoRAName = r.optStr()
		default:
			r.fail() // unknown or extra field: let the generic path judge
		}
	}
	switch tag {
	case "BlockStored":
		if st.BlockHashes == nil || st.TokenIDs == nil {
			r.fail()
		}
		return st
	case "BlockRemoved":
		if rm.BlockHashes == nil {
			r.fail()
		}
		return rm
	}
	return AllBlocksCleared{}
}

func (r *reader) optStr() string {
	s, ok := r.raw()
	if !ok {
		return ""
	}
	return string(s)
}
