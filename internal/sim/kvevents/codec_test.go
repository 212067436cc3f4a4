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
