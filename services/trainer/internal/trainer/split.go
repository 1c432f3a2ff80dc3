package trainer

import (
	"fmt"
	"slices"
)

// Fractions of a time-ordered split. The holdout gets what is left.
const (
	TrainFraction = 0.70
	ValidFraction = 0.15
)

// Split is a time-ordered train/validation/holdout split: every training row happened
// before every validation row, and every validation row before every holdout row, so the
// holdout measures what the model will meet next: the future.
type Split struct {
	Train, Valid, Holdout *Dataset
}

// SplitByTime orders d by event time (stable, so ties keep their order) and cuts it at
// trainFrac and trainFrac+validFrac. Each part must get at least one row.
func SplitByTime(d *Dataset, trainFrac, validFrac float64) (Split, error) {
	n := d.Rows()
	if trainFrac <= 0 || validFrac <= 0 || trainFrac+validFrac >= 1 {
		return Split{}, fmt.Errorf("split fractions %v/%v must be positive and sum below 1", trainFrac, validFrac)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch ta, tb := d.EventTimes[a], d.EventTimes[b]; {
		case ta < tb:
			return -1
		case ta > tb:
			return 1
		}
		return 0
	})
	a := int(float64(n) * trainFrac)
	b := int(float64(n) * (trainFrac + validFrac))
	if a < 1 || b-a < 1 || n-b < 1 {
		return Split{}, fmt.Errorf("%w: %d rows leave an empty split", ErrNoData, n)
	}
	w := d.Spec.Len()
	return Split{
		Train:   d.subset(order[:a], w),
		Valid:   d.subset(order[a:b], w),
		Holdout: d.subset(order[b:], w),
	}, nil
}
