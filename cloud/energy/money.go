package energy

import (
	"math"
	"strconv"
	"strings"
)

// Round rounds x to places decimals, half away from zero, the rule every
// figure of a report follows (cost: 2 places, kWh: 3). x is first written
// with 9 decimals so that binary floating-point noise (2.675 stored as
// 2.67499999…) does not decide the rounding.
func Round(x float64, places int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || places < 0 || places > 8 {
		return x
	}
	neg := x < 0
	s := strconv.FormatFloat(math.Abs(x), 'f', 9, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	if len(intPart) > 15-places {
		return x // beyond float64's exact integers: nothing sensible to round
	}
	n, err := strconv.ParseInt(intPart+frac[:places], 10, 64)
	if err != nil {
		return x
	}
	if frac[places] >= '5' {
		n++
	}
	r := float64(n) / math.Pow10(places)
	if neg && r != 0 {
		r = -r
	}
	return r
}

// Cents rounds a money amount to the cent.
func Cents(x float64) float64 { return Round(x, 2) }

// KWh rounds an energy figure to the watt-hour.
func KWh(x float64) float64 { return Round(x, 3) }
