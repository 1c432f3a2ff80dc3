package driftstat

import (
	"math"
)

// This file evaluates the survival function P(D_n >= x) of the one-sample two-sided
// Kolmogorov–Smirnov statistic D_n = sup |F_n − F| for a sample of n values, which KSTest
// needs on its asymptotic path. The choice of algorithm by (n, n·x²) follows Simard &
// L'Ecuyer, "Computing the Two-Sided Kolmogorov–Smirnov Distribution", J. Stat. Software
// 39(11), 2011, with the same cut-overs scipy's kstwo uses, so the two agree to rounding.

// kolmogorovSF returns P(D_n >= x).
func kolmogorovSF(n int, x float64) float64 {
	if n <= 0 || math.IsNaN(x) {
		return math.NaN()
	}
	fn := float64(n)
	t := fn * x
	switch {
	case x >= 1:
		return 0
	case t <= 0.5: // below the support: D_n >= 1/(2n) always
		return 1
	case t <= 1:
		// Ruben–Gambino: P(D_n <= x) = n!/nⁿ · (2t − 1)ⁿ for 1/(2n) <= x <= 1/n.
		var cdf float64
		if n <= 140 {
			cdf = 1
			for i := 1; i <= n; i++ {
				cdf *= float64(i) / fn * (2*t - 1)
			}
		} else {
			cdf = math.Exp(logFactorialOverPower(n) + fn*math.Log(2*t-1))
		}
		return clip01(1 - cdf)
	case t >= fn-1:
		// Ruben–Gambino: P(D_n >= x) = 2(1 − x)ⁿ for x >= 1 − 1/n.
		return clip01(2 * math.Pow(1-x, fn))
	case x >= 0.5:
		// The two one-sided exceedances are disjoint for x >= 1/2.
		return clip01(2 * smirnovSF(n, x))
	}
	nxx := t * x
	if n <= 140 {
		if nxx <= 4 {
			return clip01(1 - durbinCDF(n, x))
		}
		// Miller's approximation, twice the one-sided tail (the chance of exceeding x on
		// both sides is negligible this far out), as scipy does from n·x² > 4 on.
		return clip01(2 * smirnovSF(n, x))
	}
	switch {
	case nxx >= 370:
		return 0
	case nxx >= 2.2:
		return clip01(2 * smirnovSF(n, x))
	case n <= 100000 && fn*math.Pow(x, 1.5) <= 1.4:
		return clip01(1 - durbinCDF(n, x))
	}
	return clip01(1 - pelzGoodCDF(n, x))
}

// logFactorialOverPower returns ln(n!/nⁿ) by Stirling's series, written so that the large
// n·ln n terms cancel analytically instead of numerically.
func logFactorialOverPower(n int) float64 {
	// B_{2j}/(2j(2j−1)) for j = 8 down to 1: the coefficients of Stirling's series for ln Γ,
	// highest order first.
	tail := [...]float64{
		-3617.0 / 122400, 1.0 / 156, -691.0 / 360360, 1.0 / 1188,
		-1.0 / 1680, 1.0 / 1260, -1.0 / 360, 1.0 / 12,
	}
	fn := float64(n)
	r := 1 / fn
	r2 := r * r
	var s float64
	for _, c := range tail {
		s = s*r2 + c
	}
	return math.Log(fn)/2 - fn + math.Log(2*math.Pi)/2 + r*s
}

// Scaling used to keep matrix entries and products inside the float64 range.
const (
	scaleExp = 128
	scaleUp  = 0x1p128
	scaleDn  = 0x1p-128
)

// durbinCDF returns P(D_n <= x) by Durbin's matrix formula in the form of Marsaglia, Tsang &
// Wang, "Evaluating Kolmogorov's Distribution", J. Stat. Software 8(18), 2003: with
// n·x = k − f (k an integer, 0 <= f < 1) and the (2k−1)×(2k−1) matrix H below,
// P(D_n <= x) = n!/nⁿ · (Hⁿ)[k−1][k−1]. Cost is O(k³ log n), for the small k it is used with.
func durbinCDF(n int, x float64) float64 {
	if x >= 1 {
		return 1
	}
	nd := float64(n) * x
	if nd <= 0.5 {
		return 0
	}
	k := int(math.Ceil(nd))
	f := float64(k) - nd
	m := 2*k - 1

	// H[r][c] = 1/(r−c+1)! for r−c+1 >= 0 (0 above the subdiagonal), except the first column
	// H[r][0] = (1 − f^(r+1))/(r+1)!, the last row H[m−1][c] = (1 − f^(m−c))/(m−c)! and the
	// corner H[m−1][0] = (1 − 2fᵐ + max(0, 2f−1)ᵐ)/m!.
	invFact := make([]float64, m+1) // invFact[i] = 1/i!
	invFact[0] = 1
	for i := 1; i <= m; i++ {
		invFact[i] = invFact[i-1] / float64(i)
	}
	h := newSquare(m)
	for r := range m {
		for c := range m {
			if d := r - c + 1; d >= 0 {
				h.set(r, c, invFact[d])
			}
		}
	}
	for r := range m {
		h.set(r, 0, (1-math.Pow(f, float64(r+1)))*invFact[r+1])
	}
	for c := 1; c < m; c++ {
		h.set(m-1, c, (1-math.Pow(f, float64(m-c)))*invFact[m-c])
	}
	h.set(m-1, 0, (1-2*math.Pow(f, float64(m))+math.Pow(max(0, 2*f-1), float64(m)))*invFact[m])

	// Binary powering, tracking powers of two separately so nothing overflows.
	pw := identity(m)
	pwExp, hExp := 0, 0
	tmp := newSquare(m)
	for e := n; e > 0; e >>= 1 {
		if e&1 == 1 {
			mulInto(tmp, pw, h)
			pw, tmp = tmp, pw
			pwExp += hExp
		}
		mulInto(tmp, h, h)
		h, tmp = tmp, h
		hExp *= 2
		if math.Abs(h.at(k-1, k-1)) > scaleUp {
			h.scale(scaleDn)
			hExp += scaleExp
		}
	}
	p := pw.at(k-1, k-1)
	// Multiply by n!/nⁿ one factor at a time, rescaling before it underflows.
	fn := float64(n)
	for i := 1; i <= n; i++ {
		p = float64(i) * p / fn
		if math.Abs(p) < scaleDn {
			p *= scaleUp
			pwExp -= scaleExp
		}
	}
	return clip01(math.Ldexp(p, pwExp))
}

// square is a dense row-major m×m matrix.
type square struct {
	m int
	v []float64
}

func newSquare(m int) square { return square{m: m, v: make([]float64, m*m)} }

func identity(m int) square {
	s := newSquare(m)
	for i := range m {
		s.v[i*m+i] = 1
	}
	return s
}

func (s square) at(r, c int) float64     { return s.v[r*s.m+c] }
func (s square) set(r, c int, x float64) { s.v[r*s.m+c] = x }
func (s square) scale(f float64) {
	for i := range s.v {
		s.v[i] *= f
	}
}

// mulInto sets dst = a·b; dst must not alias a or b.
func mulInto(dst, a, b square) {
	m := a.m
	clear(dst.v)
	for r := range m {
		row := dst.v[r*m : (r+1)*m]
		for k := range m {
			x := a.v[r*m+k]
			if x == 0 {
				continue
			}
			bk := b.v[k*m : (k+1)*m]
			for c, y := range bk {
				row[c] += x * y
			}
		}
	}
}

// pelzGoodCDF returns the Pelz–Good approximation of P(D_n <= x) (Pelz & Good, J. R. Stat.
// Soc. B 38(2), 1976): the Li-Chien–Korolyuk expansion K0(z) + K1(z)/√n + K2(z)/n +
// K3(z)/n^1.5 in z = x√n, with each Kᵢ rewritten through Jacobi's theta transformation as
// sums over odd multiples that converge fast for small z.
func pelzGoodCDF(n int, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	fn := float64(n)
	z := math.Sqrt(fn) * x
	z2 := z * z
	z3, z4, z6 := z2*z, z2*z2, z2*z2*z2
	logq := -math.Pi * math.Pi / 8 / z2
	if logq < -708 { // exp underflows: the CDF is 0 to double precision
		return 0
	}
	q := math.Exp(logq)
	pi2 := math.Pi * math.Pi
	pi4, pi6 := pi2*pi2, pi2*pi2*pi2

	// With m = 2k−1, the odd-index sums are Σ_k cᵢ(m)·q^(m²) for
	//   c0 = 1
	//   c1 = π²m²/4 − z²
	//   c2 = 6z⁶ + 2z⁴ + (2z⁴ − 5z²)π²m²/4 + π⁴(1 − 2z²)m⁴/16
	//   c3 = −30z⁶ − 90z⁸ + π²(135z⁴ − 96z⁶)m²/4 + π⁴(212z⁴ − 60z²)m⁴/16 + π⁶(5 − 30z²)m⁶/64
	// evaluated in Horner form in q⁸ᵏ, since (2k+1)² − (2k−1)² = 8k.
	maxK := int(math.Ceil(16 * z / math.Pi))
	var k0, k1, k2, k3 float64
	for k := maxK; k >= 1; k-- {
		m := float64(2*k - 1)
		m2 := m * m
		m4, m6 := m2*m2, m2*m2*m2
		qk := math.Pow(q, float64(8*k))
		k0 = k0*qk + 1
		k1 = k1*qk + (-z2 + pi2/4*m2)
		k2 = k2*qk + (6*z6 + 2*z4 + (2*z4-5*z2)*pi2/4*m2 + pi4*(1-2*z2)/16*m4)
		k3 = k3*qk + (-30*z6 - 90*z4*z4 + pi2*(135*z4-96*z6)/4*m2 + pi4*(-60*z2+212*z4)/16*m4 + pi6*(5-30*z2)/64*m6)
	}
	c := q * math.Sqrt(2*math.Pi)
	k0 *= c / z
	k1 *= c / (6 * z4)
	k2 *= c / (72 * z6 * z)
	k3 *= c / (6480 * z6 * z4)

	// The parts of K2 and K3 that sum over all integers k of q'^(k²), q' = e^(−π²/(2z²)).
	qq := math.Exp(-pi2 / 2 / z2)
	var s2, s3 float64
	for k := maxK; k >= 1; k-- {
		fk := float64(k)
		k2sq := fk * fk
		w := k2sq * math.Pow(qq, k2sq)
		s2 += w
		s3 += (3*z2 - pi2*k2sq) * w
	}
	k2 += s2 * pi2 * math.Sqrt(2*math.Pi) / (-36 * z3)
	k3 += s3 * pi2 * math.Sqrt(2*math.Pi) / (216 * z6)

	rn := math.Sqrt(fn)
	return k0 + k1/rn + k2/fn + k3/(fn*rn)
}

// smirnovSF returns P(D⁺_n >= x), the upper tail of the one-sided statistic, by the
// Birnbaum–Tingey sum
//
//	x · Σ_{v=0}^{⌊n(1−x)⌋} C(n,v) · (x + v/n)^(v−1) · (1 − x − v/n)^(n−v),
//
// whose terms are all positive. Terms are evaluated as logarithms (the binomial coefficient
// accumulated one factor at a time) and the sum stops once the remaining terms cannot change
// it. The closed forms for x <= 1/n and x >= 1 − 1/n and, for n above a million, the
// approximation exp(−(6nx+1)²/(18n)) are the ones scipy.special.smirnov uses.
func smirnovSF(n int, x float64) float64 {
	switch {
	case n <= 0 || math.IsNaN(x) || x < 0 || x > 1:
		return math.NaN()
	case n == 1:
		return 1 - x
	case x == 0:
		return 1
	case x == 1:
		return 0
	}
	fn := float64(n)
	nx := fn * x
	switch {
	case nx <= 1:
		return 1 - x*math.Pow(1+x, fn-1)
	case -2*fn*x*x < -708.3964185322641: // the tail underflows
		return 0
	case math.Floor(nx) >= fn-1:
		return math.Pow(1-x, fn)
	case n > 1000000:
		logp := -(6*nx + 1) * (6*nx + 1) / 18 / fn
		if logp < -math.Ln2 {
			return math.Exp(logp)
		}
		return 1 + math.Expm1(logp) // 1 − cdf with cdf = −expm1(logp)
	}
	last := int(math.Floor(fn * (1 - x)))
	var sum float64
	// ln C(n, v) is accumulated one factor at a time. Around v ~ n/2 it is ~n·ln 2, and the
	// sum has up to n significant terms, so plain accumulation would lose ~1e-8 relative;
	// the compensation term c keeps the running value exact to ~1e-16 relative.
	var logC, c float64
	for v := 0; v <= last; v++ {
		if v > 0 {
			logC, c = neumaierAdd(logC, c, math.Log(float64(n-v+1)/float64(v)))
		}
		hi := float64(n-v)/fn - x // 1 − x − v/n
		if hi <= 0 {
			break
		}
		lo := float64(v)/fn + x // x + v/n
		term := math.Exp((logC + float64(v-1)*math.Log(lo) + float64(n-v)*math.Log(hi)) + c)
		sum += term
		if term != 0 && 4*float64(last-v)*term < dblEpsilon*sum && v != last {
			break
		}
		if term == 0 && v > n/2 {
			break
		}
	}
	return clip01(x * sum)
}

// neumaierAdd adds x to the compensated sum (s, c) (Neumaier's variant of Kahan summation)
// and returns the new pair; s + c is the sum.
func neumaierAdd(s, c, x float64) (float64, float64) {
	t := s + x
	if math.Abs(s) >= math.Abs(x) {
		c += (s - t) + x
	} else {
		c += (x - t) + s
	}
	return t, c
}

// dblEpsilon is the float64 machine epsilon, 2⁻⁵².
const dblEpsilon = 0x1p-52
