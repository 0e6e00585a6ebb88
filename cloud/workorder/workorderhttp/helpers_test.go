package workorderhttp

import (
	"testing"
	"time"

	"github.com/plantroom/plantroom/config"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// monday10 is Monday 2025-03-03 10:00 in Shanghai: the garden day shift.
var monday10 = time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai)

func loadBundle(t testing.TB) *config.Bundle {
	t.Helper()
	b, err := config.LoadBundle("../../../configs/org.yaml", "../../../configs/tariffs.yaml", "../../../configs/templates", "../../../configs/rules.yaml")
	if err != nil {
		t.Fatalf("load demo configuration: %v", err)
	}
	// Without the device groups: these tests follow one pump's pressure
	// alarm and its order (cloud/alarm's group_test.go has the groups).
	for ci := range b.Org.Companies {
		for pi := range b.Org.Companies[ci].Projects {
			b.Org.Companies[ci].Projects[pi].Groups = nil
		}
	}
	return b
}
