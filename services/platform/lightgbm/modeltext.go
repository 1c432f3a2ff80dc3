package lightgbm

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
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

// modelTree is one tree of a model text in LightGBM's arrays. A single-leaf tree has only
// leafValue; otherwise feat, thr, decision, left and right hold one value per internal node,
// children >= 0 naming internal nodes and < 0 leaves (^leaf).
type modelTree struct {
	leafValue   []float64
	feat        []int32
	thr         []float64
	decision    []int32
	left, right []int32
}

// parseModelTree reads one Tree= block into LightGBM's arrays and checks that it is a tree
// of numerical splits: every node and leaf reached exactly once from the root, split features
// in range. Categorical and linear trees fail with unsupported.
func parseModelTree(kv map[string]string, numFeatures int, unsupported error) (modelTree, error) {
	var tr modelTree
	nl, err := strconv.Atoi(kv["num_leaves"])
	if err != nil || nl < 1 {
		return tr, fmt.Errorf("num_leaves %q", kv["num_leaves"])
	}
	if c := kv["num_cat"]; c != "" && c != "0" {
		return tr, fmt.Errorf("%w: categorical splits", unsupported)
	}
	if l := kv["is_linear"]; l != "" && l != "0" {
		return tr, fmt.Errorf("%w: linear tree", unsupported)
	}
	if tr.leafValue, err = parseFloats(kv["leaf_value"], nl); err != nil {
		return tr, fmt.Errorf("leaf_value: %w", err)
	}
	if nl == 1 {
		return tr, nil
	}
	ni := nl - 1
	var errs [5]error
	tr.feat, errs[0] = parseInts(kv["split_feature"], ni)
	tr.left, errs[1] = parseInts(kv["left_child"], ni)
	tr.right, errs[2] = parseInts(kv["right_child"], ni)
	tr.decision, errs[3] = parseInts(kv["decision_type"], ni)
	tr.thr, errs[4] = parseFloats(kv["threshold"], ni)
	if err := errors.Join(errs[:]...); err != nil {
		return tr, err
	}
	for i := range ni {
		if tr.decision[i]&decisionCategorical != 0 {
			return tr, fmt.Errorf("%w: categorical splits", unsupported)
		}
		if tr.feat[i] < 0 || int(tr.feat[i]) >= numFeatures {
			return tr, fmt.Errorf("split feature %d out of range", tr.feat[i])
		}
		if (tr.decision[i]>>2)&3 == 3 {
			return tr, fmt.Errorf("decision type %d: unknown missing type", tr.decision[i])
		}
	}
	// Every node and leaf is reached exactly once from the root: the evaluators rely on it.
	seenNode, seenLeaf := make([]bool, ni), make([]bool, nl)
	stack := []int32{0}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n < 0 {
			if int(^n) >= nl || seenLeaf[^n] {
				return tr, fmt.Errorf("leaf %d reached twice or out of range", ^n)
			}
			seenLeaf[^n] = true
			continue
		}
		if int(n) >= ni || seenNode[n] {
			return tr, fmt.Errorf("node %d reached twice or out of range", n)
		}
		seenNode[n] = true
		stack = append(stack, tr.right[n], tr.left[n])
	}
	if slices.Contains(seenLeaf, false) {
		return tr, errors.New("a leaf is not reachable from the root")
	}
	return tr, nil
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
