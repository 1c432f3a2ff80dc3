package driftstat

import (
	"math"
	"slices"
)

// radixMinLen is the length below which sortFloats leaves the work to slices.Sort.
const radixMinLen = 256

// sortFloats sorts the NaN-free xs ascending, as slices.Sort does (−0 lands before +0,
// which compare equal anyway). From radixMinLen values on it is a least-significant-digit
// radix sort on the IEEE-754 bits, mapped to unsigned keys whose order is the numeric order
// (flip every bit of a negative number, only the sign bit of a positive one): eight passes
// of 8 bits, skipping the passes where every key has the same digit. keys and tmp are scratch
// space of at least len(xs) each. For the windows NullQuantiles sorts this is several times
// faster than a comparison sort.
func sortFloats(xs []float64, keys, tmp []uint64) {
	n := len(xs)
	if n < radixMinLen {
		slices.Sort(xs)
		return
	}
	keys, tmp = keys[:n], tmp[:n]
	var counts [8][256]int
	for i, x := range xs {
		k := math.Float64bits(x)
		if k>>63 == 1 {
			k = ^k
		} else {
			k |= 1 << 63
		}
		keys[i] = k
		for d := range 8 {
			counts[d][(k>>(8*d))&0xff]++
		}
	}
	src, dst := keys, tmp
	for d := range 8 {
		c := &counts[d]
		shift := 8 * d
		if c[(src[0]>>shift)&0xff] == n {
			continue // every key has this digit: the pass would not move anything
		}
		sum := 0
		for i, v := range c {
			c[i] = sum
			sum += v
		}
		for _, k := range src {
			b := (k >> shift) & 0xff
			dst[c[b]] = k
			c[b]++
		}
		src, dst = dst, src
	}
	for i, k := range src {
		if k>>63 == 1 {
			k &^= 1 << 63
		} else {
			k = ^k
		}
		xs[i] = math.Float64frombits(k)
	}
}
