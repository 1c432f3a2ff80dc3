package lightgbm

import (
	"errors"
	"fmt"
	"math"
)

// ErrTreeSHAPUnsupported means NewTreeSHAP cannot explain the model exactly (categorical
// splits, several trees per iteration, linear trees, a model text without the counts
// TreeSHAP weighs paths by); use a FastPredictor of kind PredictContrib instead.
var ErrTreeSHAPUnsupported = errors.New("model not supported by the Go TreeSHAP")

// TreeSHAP computes the SHAP contributions of one row (path-dependent TreeSHAP, the values
// LightGBM's PredictContrib returns) in Go, from the trees of a model's text, several times
// faster than LightGBM on trees of realistic depth.
//
// LightGBM's recursion (Lundberg et al.) extends and unwinds a path polynomial at every node
// and, at each leaf, unwinds it once per feature on the path: O(leaves x depth^2) per tree,
// with copying at every node. Here each leaf's path is prepared once: its distinct features,
// their zero fractions (the share of training rows down the path's side, multiplied over the
// feature's splits) and the decisions that make the row follow the path. For a row, a feature
// is "hot" on a leaf's path when the row takes all of the path's decisions on it (one
// fraction 1) and "cold" otherwise (0). With one fractions in {0, 1}, the Shapley weight of a
// feature is a product over the cold features' zero fractions times a sum over subsets of the
// hot features, which the elementary symmetric polynomials of the hot zero fractions give:
// O(hot^2 + path) per leaf, no recursion, no allocation.
//
// A TreeSHAP is safe for concurrent use. It covers binary and regression models with
// numerical splits (missing values as LightGBM treats them: NaN, zero, none).
type TreeSHAP struct {
	numFeatures int
	bias        float64 // the trees' expected values, summed in tree order as LightGBM does
	trees       []shapTree
	maxNodes    int
	maxPath     int
}

type shapTree struct {
	feat        []int32
	thr         []float64
	decision    []uint8
	left, right []int32 // >= 0: internal node; < 0: ^leaf
	leaves      []shapLeaf
}

// shapLeaf is one root-to-leaf path, prepared.
type shapLeaf struct {
	value float64
	feats []int32   // distinct features on the path, in first-split order
	zero  []float64 // their zero fractions
	conds []shapCond
	// In trees of at most 64 internal nodes, the path's decisions on feature i as bit masks
	// over the nodes: the row takes them all when its go-left bits & mask[i] == want[i].
	mask, want []uint64
	w          []float64 // w[k] = k!(d-1-k)!/d!, d = len(feats): the Shapley weight of a subset of k
}

// shapCond is one decision on a path: at node, the row must go left (or right); fi indexes
// the leaf's feats.
type shapCond struct {
	node int32
	left bool
	fi   uint8
}

const (
	decisionCategorical = 1
	decisionDefaultLeft = 2
	missingNone         = 0
	missingZero         = 1
	missingNaN          = 2
	kZeroThreshold      = float64(float32(1e-35)) // LightGBM's kZeroThreshold (1e-35f, a float widened)
	maxTreeSHAPPath     = 64                      // distinct features on one path (bounded by the fixed scratch)
)

// NewTreeSHAP makes the Go TreeSHAP of the booster's model (its text, as SaveModelString
// returns it).
func (b *Booster) NewTreeSHAP() (*TreeSHAP, error) {
	text, err := b.SaveModelString()
	if err != nil {
		return nil, fmt.Errorf("new treeshap: %w", err)
	}
	return ParseTreeSHAP(text)
}

// ParseTreeSHAP prepares the TreeSHAP of a LightGBM text model. It fails with
// ErrTreeSHAPUnsupported for models it cannot explain exactly.
func ParseTreeSHAP(modelText string) (*TreeSHAP, error) {
	mt, err := parseModelText(modelText)
	if err != nil {
		return nil, fmt.Errorf("parse treeshap: %w", err)
	}
	if err := mt.singleOutput(ErrTreeSHAPUnsupported); err != nil {
		return nil, fmt.Errorf("parse treeshap: %w", err)
	}
	t := &TreeSHAP{numFeatures: mt.numFeatures}
	for i, block := range mt.trees {
		tr, ev, err := parseShapTree(block, t.numFeatures)
		if err != nil {
			return nil, fmt.Errorf("parse treeshap: tree %d: %w", i, err)
		}
		t.bias += ev
		t.trees = append(t.trees, tr)
		t.maxNodes = max(t.maxNodes, len(tr.feat))
		for i := range tr.leaves {
			t.maxPath = max(t.maxPath, len(tr.leaves[i].feats))
		}
	}
	return t, nil
}

// parseShapTree reads one Tree= block and returns the tree and its expected value.
func parseShapTree(kv map[string]string, numFeatures int) (shapTree, float64, error) {
	var tr shapTree
	mt, err := parseModelTree(kv, numFeatures, ErrTreeSHAPUnsupported)
	if err != nil {
		return tr, 0, err
	}
	leafValue := mt.leafValue
	nl := len(leafValue)
	if nl == 1 {
		// A stump: its output is its expected value and it contributes to no feature.
		return tr, leafValue[0], nil
	}
	ni := nl - 1
	leafCount, err1 := parseFloats(kv["leaf_count"], nl)
	internalCount, err2 := parseFloats(kv["internal_count"], ni)
	if err := errors.Join(err1, err2); err != nil {
		return tr, 0, fmt.Errorf("%w: no data counts: %w", ErrTreeSHAPUnsupported, err)
	}
	tr.feat, tr.left, tr.right, tr.thr = mt.feat, mt.left, mt.right, mt.thr
	tr.decision = make([]uint8, ni)
	for i, d := range mt.decision {
		tr.decision[i] = uint8(d)
	}
	count := func(node int32) float64 {
		if node < 0 {
			return leafCount[^node]
		}
		return internalCount[node]
	}
	// Walk every root-to-leaf path, as LightGBM's recursion does (a feature split again on
	// the path multiplies into its zero fraction).
	tr.leaves = make([]shapLeaf, nl)
	seen := make([]bool, nl)
	var path []shapCond
	var walk func(node int32, depth int) error
	walk = func(node int32, depth int) error {
		if depth > ni {
			return errors.New("cycle in the tree")
		}
		if node < 0 {
			leaf := int(^node)
			if leaf >= nl || seen[leaf] {
				return fmt.Errorf("leaf %d reached twice or out of range", leaf)
			}
			seen[leaf] = true
			lf := shapLeaf{value: leafValue[leaf]}
			for _, c := range path {
				parent := c.node
				child := tr.right[parent]
				if c.left {
					child = tr.left[parent]
				}
				ratio := count(child) / count(parent)
				f := tr.feat[parent]
				fi := -1
				for i, g := range lf.feats {
					if g == f {
						fi = i
						break
					}
				}
				if fi < 0 {
					fi = len(lf.feats)
					lf.feats = append(lf.feats, f)
					lf.zero = append(lf.zero, ratio)
				} else {
					lf.zero[fi] = ratio * lf.zero[fi]
				}
				if len(lf.feats) > maxTreeSHAPPath {
					return fmt.Errorf("%w: more than %d features on one path", ErrTreeSHAPUnsupported, maxTreeSHAPPath)
				}
				lf.conds = append(lf.conds, shapCond{node: parent, left: c.left, fi: uint8(fi)})
			}
			if ni <= 64 {
				lf.mask = make([]uint64, len(lf.feats))
				lf.want = make([]uint64, len(lf.feats))
				for _, c := range lf.conds {
					lf.mask[c.fi] |= 1 << uint(c.node)
					if c.left {
						lf.want[c.fi] |= 1 << uint(c.node)
					}
				}
			}
			d := len(lf.feats)
			lf.w = make([]float64, d)
			if d > 0 {
				lf.w[0] = 1 / float64(d)
				for k := 1; k < d; k++ {
					lf.w[k] = lf.w[k-1] * float64(k) / float64(d-k)
				}
			}
			tr.leaves[leaf] = lf
			return nil
		}
		if int(node) >= ni {
			return fmt.Errorf("node %d out of range", node)
		}
		path = append(path, shapCond{node: node, left: true})
		if err := walk(tr.left[node], depth+1); err != nil {
			return err
		}
		path[len(path)-1].left = false
		if err := walk(tr.right[node], depth+1); err != nil {
			return err
		}
		path = path[:len(path)-1]
		return nil
	}
	if err := walk(0, 0); err != nil {
		return tr, 0, err
	}
	// LightGBM's Tree::ExpectedValue, in its order.
	total := internalCount[0]
	ev := 0.0
	for i := range nl {
		ev += (leafCount[i] / total) * leafValue[i]
	}
	return tr, ev, nil
}

// NumFeatures returns the row length PredictInto expects.
func (t *TreeSHAP) NumFeatures() int { return t.numFeatures }

// OutputLen returns NumFeatures()+1: one contribution per feature, then the bias.
func (t *TreeSHAP) OutputLen() int { return t.numFeatures + 1 }

// goesLeft is LightGBM's Tree::NumericalDecision.
func (tr *shapTree) goesLeft(row []float64, node int) bool {
	fval := row[tr.feat[node]]
	dt := tr.decision[node]
	missing := (dt >> 2) & 3
	if math.IsNaN(fval) && missing != missingNaN {
		fval = 0
	}
	if (missing == missingZero && fval >= -kZeroThreshold && fval <= kZeroThreshold) || (missing == missingNaN && math.IsNaN(fval)) {
		return dt&decisionDefaultLeft != 0
	}
	return fval <= tr.thr[node]
}

// PredictInto writes the SHAP contributions of row into dst (NumFeatures() values, then the
// bias) and returns how many it wrote: the layout of a PredictContrib predictor.
func (t *TreeSHAP) PredictInto(dst, row []float64) (int, error) {
	n := t.numFeatures + 1
	if len(row) != t.numFeatures {
		return 0, fmt.Errorf("treeshap: %w: row has %d values, model expects %d", ErrShape, len(row), t.numFeatures)
	}
	if len(dst) < n {
		return 0, fmt.Errorf("treeshap: %w: output buffer holds %d values, need %d", ErrShape, len(dst), n)
	}
	phi := dst[:n]
	clear(phi)
	var decBuf [64]bool
	dec := decBuf[:0]
	if t.maxNodes > len(decBuf) {
		dec = make([]bool, t.maxNodes)
	}
	var s leafScratch // zeroed once per row; explainLeaf sets what it reads
	for ti := range t.trees {
		tr := &t.trees[ti]
		nodes := len(tr.feat)
		if nodes <= 64 {
			var left uint64
			for i := range nodes {
				if tr.goesLeft(row, i) {
					left |= 1 << uint(i)
				}
			}
			for li := range tr.leaves {
				lf := &tr.leaves[li]
				hot := s.hot[:len(lf.feats)]
				for i, m := range lf.mask {
					hot[i] = left&m == lf.want[i]
				}
				explainLeaf(phi, lf, &s)
			}
			continue
		}
		dec = dec[:nodes]
		for i := range nodes {
			dec[i] = tr.goesLeft(row, i)
		}
		for li := range tr.leaves {
			lf := &tr.leaves[li]
			hot := s.hot[:len(lf.feats)]
			for i := range hot {
				hot[i] = true
			}
			for _, c := range lf.conds {
				if dec[c.node] != c.left {
					hot[c.fi] = false
				}
			}
			explainLeaf(phi, lf, &s)
		}
	}
	phi[t.numFeatures] = t.bias
	return n, nil
}

// leafScratch is explainLeaf's working memory, reused across the leaves of a row.
type leafScratch struct {
	hot     [maxTreeSHAPPath]bool
	e       [maxTreeSHAPPath + 1]float64 // elementary symmetric polynomials of the hot zero fractions
	ed      [maxTreeSHAPPath]float64     // the same without one hot feature (deflated)
	suffix  [maxTreeSHAPPath + 1]float64 // suffix products of the cold zero fractions
	coldIdx [maxTreeSHAPPath]int
}

// explainLeaf adds one leaf's share of each feature's contribution to phi; s.hot says which
// of the path's features the row takes all the decisions of.
func explainLeaf(phi []float64, lf *shapLeaf, s *leafScratch) {
	d := len(lf.feats)
	if d == 0 {
		return
	}
	hot := s.hot[:d]
	zero := lf.zero[:d]
	e := s.e[:d+1]
	e[0] = 1
	h, c := 0, 0
	coldProd := 1.0
	for i, z := range zero {
		if hot[i] {
			h++
			e[h] = 0
			for m := h; m >= 1; m-- {
				e[m] += z * e[m-1]
			}
		} else {
			s.coldIdx[c] = i
			c++
			coldProd *= z
		}
	}
	w := lf.w[:d]
	v := lf.value
	if h > 0 {
		// Hot feature i: prod(cold zero fractions) x sum over the subsets S of the other hot
		// features of w[|S|] x prod(zero fractions of the hot features outside S and i).
		ed := s.ed[:h]
		for i, z := range zero {
			if !hot[i] {
				continue
			}
			ed[0] = 1
			sum := w[h-1] // S = all the other hot features
			for m := 1; m < h; m++ {
				ed[m] = e[m] - z*ed[m-1]
				sum += w[h-1-m] * ed[m]
			}
			phi[lf.feats[i]] += v * (1 - z) * coldProd * sum
		}
	}
	if c > 0 {
		// Cold feature i: prod(the other cold zero fractions) x the same sum over all the hot
		// features.
		all := 0.0
		for m := 0; m <= h; m++ {
			all += w[h-m] * e[m]
		}
		cold := s.coldIdx[:c]
		suffix := s.suffix[:c+1]
		suffix[c] = 1
		for j := c - 1; j >= 0; j-- {
			suffix[j] = suffix[j+1] * zero[cold[j]]
		}
		prefix := 1.0
		for j, i := range cold {
			z := zero[i]
			phi[lf.feats[i]] += v * (0 - z) * prefix * suffix[j+1] * all
			prefix *= z
		}
	}
}
