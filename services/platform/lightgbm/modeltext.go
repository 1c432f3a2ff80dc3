package lightgbm

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// modelText is a LightGBM text model cut into its parts: the header's lines before the
// first tree and one map of key=value lines per "Tree=" block, up to "end of trees" (what
// follows, feature importances and parameters, is not read).
type modelText struct {
	// header holds the key=value lines before the first tree; a line without "=" (such as
	// "average_output") is a key with an empty value.
	header map[string]string
	trees  []map[string]string
	// numFeatures is max_feature_idx+1.
	numFeatures int
}

// parseModelText reads the structure of a LightGBM text model; what its trees mean is left
// to the caller.
func parseModelText(text string) (modelText, error) {
	mt := modelText{header: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	var block map[string]string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Tree="):
			block = map[string]string{}
			mt.trees = append(mt.trees, block)
		case line == "end of trees":
			v, ok := mt.header["max_feature_idx"]
			if !ok {
				return mt, errors.New("no max_feature_idx line")
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return mt, fmt.Errorf("max_feature_idx %q", v)
			}
			mt.numFeatures = n + 1
			if len(mt.trees) == 0 {
				return mt, errors.New("no trees")
			}
			return mt, nil
		default:
			k, v, ok := strings.Cut(line, "=")
			switch {
			case block != nil && ok:
				block[k] = v
			case block == nil && line != "":
				mt.header[k] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return mt, err
	}
	return mt, errors.New(`no "end of trees" line`)
}

// singleOutput checks that the model makes one tree per iteration (binary or regression),
// or fails with unsupported.
func (mt modelText) singleOutput(unsupported error) error {
	for _, k := range []string{"num_tree_per_iteration", "num_class"} {
		if v, ok := mt.header[k]; ok && v != "1" {
			return fmt.Errorf("%w: %s=%s", unsupported, k, v)
		}
	}
	return nil
}

func parseFloats(s string, n int) ([]float64, error) {
	f := strings.Fields(s)
	if len(f) != n {
		return nil, fmt.Errorf("%d values, want %d", len(f), n)
	}
	out := make([]float64, n)
	for i, x := range f {
		v, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func parseInts(s string, n int) ([]int32, error) {
	f := strings.Fields(s)
	if len(f) != n {
		return nil, fmt.Errorf("%d values, want %d", len(f), n)
	}
	out := make([]int32, n)
	for i, x := range f {
		v, err := strconv.ParseInt(x, 10, 32)
		if err != nil {
			return nil, err
		}
		out[i] = int32(v)
	}
	return out, nil
}
