package autoscaling

import (
	"reflect"
	"testing"
)

func TestBlockSizes(t *testing.T) {
	cases := []struct {
		capacity int32
		rate     float64
		want     []int32
	}{
		{0, 2, nil},
		{1, 2, []int32{1}},
		{10, 2, []int32{1, 2, 4, 3}},
		{15, 2, []int32{1, 2, 4, 8}},
		{10, 1, []int32{10}},
		{10, 1.5, []int32{1, 2, 3, 4}},
	}
	for _, c := range cases {
		if got, _ := blockSizes(c.capacity, c.rate); !reflect.DeepEqual(got, c.want) {
			t.Errorf("blockSizes(%d, %v) = %v, want %v", c.capacity, c.rate, got, c.want)
		}
	}
}

func TestPlace(t *testing.T) {
	cheapDear := []costTarget{{cost: 3, lo: 0, hi: 8}, {cost: 1, lo: 0, hi: 8}}
	cases := []struct {
		name    string
		targets []costTarget
		total   int32
		rate    int32
		want    []int32
	}{
		{"zero", cheapDear, 0, 200, []int32{0, 0}},
		{"first replica on the cheapest", cheapDear, 1, 200, []int32{0, 1}},
		{"cheap blocks 1 and 2 before the dear block of 1", cheapDear, 3, 200, []int32{0, 3}},
		{"dear block of 1 (cost 3) before cheap block of 4", cheapDear, 4, 200, []int32{1, 3}},
		{"cheap block of 4 next", cheapDear, 8, 200, []int32{1, 7}},
		{"all", cheapDear, 16, 200, []int32{8, 8}},
		{"rate 100 fills the cheapest entirely first", cheapDear, 9, 100, []int32{1, 8}},
		{"minimums first", []costTarget{{cost: 1, lo: 1, hi: 4}, {cost: 5, lo: 2, hi: 4}}, 3, 200, []int32{1, 2}},
		{"above the sum of maximums", []costTarget{{cost: 1, lo: 0, hi: 2}, {cost: 2, lo: 0, hi: 2}}, 9, 200, []int32{2, 2}},
		{"equal costs in target order", []costTarget{{cost: 1, lo: 0, hi: 4}, {cost: 1, lo: 0, hi: 4}}, 2, 200, []int32{1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := place(c.targets, c.total, c.rate); !reflect.DeepEqual(got, c.want) {
				t.Errorf("place = %v, want %v", got, c.want)
			}
		})
	}
}

func TestPlaceIsMonotonic(t *testing.T) {
	targets := []costTarget{{cost: 4, lo: 0, hi: 9}, {cost: 1, lo: 1, hi: 12}, {cost: 2, lo: 0, hi: 7}}
	prev := place(targets, 1, 200)
	for total := int32(2); total <= 28; total++ {
		got := place(targets, total, 200)
		var sum int32
		for i := range got {
			sum += got[i]
			if got[i] < prev[i] {
				t.Fatalf("total %d lowered target %d: %v -> %v", total, i, prev, got)
			}
		}
		if sum != total {
			t.Fatalf("total %d placed %d", total, sum)
		}
		prev = got
	}
}
