package driftstat

// Unexported functions the external tests cross-check against scipy.
var (
	KolmogorovSF = kolmogorovSF
	SmirnovSF    = smirnovSF
	DurbinCDF    = durbinCDF
	PelzGoodCDF  = pelzGoodCDF
)
