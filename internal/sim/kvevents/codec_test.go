package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func sampleBatch() Batch {
	lora := 3
	return Batch{TS: 1700000000.5, Events: []Event{
		BlockStored{BlockHashes: []BlockHash{{1, 2, 3, 4, 5, 6, 7, 8, 9}, {9, 9}}, ParentBlockHash: nil,
			TokenIDs: []int{1, 2, 3, 128009}, BlockSize: 2, LoRAID: &lora, Medium: MediumGPU, LoRAName: "sql"},
		BlockRemoved{BlockHashes: []BlockHash{{1, 2, 3, 4, 5, 6, 7, 8, 9}}, Medium: MediumGPU},
		AllBlocksCleared{},
	}}
}

func TestRoundTripBothLayouts(t *testing.T) {
	for _, c := range []Codec{{Encoding: Positional}, {Encoding: Keyed}} {
		payload, err := c.Encode(sampleBatch())
		require.NoError(t, err)
		got, err := Decode(payload)
		require.NoError(t, err)
		assert.Equal(t, sampleBatch(), got)
	}
}

func TestPositionalLayoutMatchesArrayLike(t *testing.T) {
	payload, err := Codec{Encoding: Positional}.Encode(sampleBatch())
	require.NoError(t, err)
	var raw []any
	require.NoError(t, msgpack.Unmarshal(payload, &raw))
	require.Len(t, raw, 2, "ts and events; the unset rank is omitted")
	stored := raw[1].([]any)[0].([]any)
	assert.Equal(t, "BlockStored", stored[0])
	assert.Len(t, stored, 8, "tag plus seven fields")
	assert.Equal(t, []any{"AllBlocksCleared"}, raw[1].([]any)[2])
}

func TestIntHashesKeepLow64Bits(t *testing.T) {
	payload, err := Codec{IntHashes: true}.Encode(sampleBatch())
	require.NoError(t, err)
	got, err := Decode(payload)
	require.NoError(t, err)
	stored := got.Events[0].(BlockStored)
	assert.Equal(t, BlockHash{1, 2, 3, 4, 5, 6, 7, 8, 9}.Uint64(), stored.BlockHashes[0].Uint64())
	assert.Equal(t, uint64(0x0203040506070809), stored.BlockHashes[0].Uint64())
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, p := range [][]byte{{0xc1}, {0x91, 0x01}, mustPack(t, []any{1.0, []any{[]any{"Nope"}}}), mustPack(t, "x")} {
		_, err := Decode(p)
		assert.ErrorIs(t, err, ErrMalformed)
	}
}

func mustPack(t *testing.T, v any) []byte {
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	return b
}

// The fast decoder reads every layout and hash encoding exactly as the
// generic one does, and defers to it on anything else.
func TestFastDecoderMatchesGeneric(t *testing.T) {
	rank := 2
	big := sampleBatch()
	st := big.Events[0].(BlockStored)
	st.TokenIDs = make([]int, 70000)
	for i := range st.TokenIDs {
		st.TokenIDs[i] = i * 37 % 200000
	}
	st.TokenIDs[5] = -3
	st.BlockSize = 35000
	big.Events[0] = st
	big.DataParallelRank = &rank
	bare := Batch{TS: 3, Events: []Event{BlockStored{BlockHashes: []BlockHash{{7}}, ParentBlockHash: BlockHash{1, 2}, TokenIDs: []int{5}, BlockSize: 1}}}
	for _, b := range []Batch{sampleBatch(), big, bare, {TS: 1, Events: []Event{}}} {
		for _, c := range []Codec{{}, {Encoding: Keyed}, {IntHashes: true}, {Encoding: Keyed, IntHashes: true}} {
			payload, err := c.Encode(b)
			require.NoError(t, err)
			want, err := decodeGeneric(payload)
			require.NoError(t, err)
			got, err := decodeFast(payload)
			require.NoError(t, err, "%+v", c)
			assert.Equal(t, want, got, "%+v", c)
		}
	}
	// Integer timestamps, extra fields and garbage go to the generic path.
	for _, p := range [][]byte{mustPack(t, []any{1, []any{[]any{"AllBlocksCleared"}}}), mustPack(t, map[string]any{"ts": 1.0, "events": []any{}, "extra": 1}), {0xc1}} {
		_, fastErr := decodeFast(p)
		_, genErr := decodeGeneric(p)
		_, err := Decode(p)
		if fastErr == nil {
			assert.NoError(t, genErr)
		}
		assert.Equal(t, genErr == nil, err == nil)
	}
}
