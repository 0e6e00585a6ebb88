package store

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in           string
		major, minor int
	}{
		{"18.16.1", 18, 16},
		{"23.8.2.7", 23, 8},
		{" 24.3.1.2672 \n", 24, 3},
		{"19.6", 19, 6},
	} {
		s, err := ParseVersion(tc.in)
		if err != nil || s.Major != tc.major || s.Minor != tc.minor {
			t.Errorf("ParseVersion(%q) = %+v, %v; want %d.%d", tc.in, s, err, tc.major, tc.minor)
		}
	}
	for _, bad := range []string{"", "18", "x.y", "18.x.1", "-1.2"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded, want an error", bad)
		}
	}
}

func TestCapabilities(t *testing.T) {
	old := Server{Major: 18, Minor: 16}
	if old.HasLowCardinality() || old.HasCodecs() || old.HasTTL() || old.HasDateTime64() || old.Modern() {
		t.Errorf("18.16 claims a modern feature: %+v", old)
	}
	modern := Server{Major: 23, Minor: 8}
	if !modern.HasLowCardinality() || !modern.HasCodecs() || !modern.HasTTL() || !modern.HasDateTime64() || !modern.Modern() {
		t.Errorf("23.8 lacks a feature: %+v", modern)
	}
	mid := Server{Major: 19, Minor: 7}
	if !mid.HasTTL() || mid.HasCodecs() || mid.Modern() {
		t.Errorf("19.7: TTL=%v codecs=%v modern=%v; want true false false", mid.HasTTL(), mid.HasCodecs(), mid.Modern())
	}
	if old.OnCluster() != "" || (Server{Cluster: "main"}).OnCluster() != " ON CLUSTER `main`" {
		t.Errorf("OnCluster: %q / %q", old.OnCluster(), Server{Cluster: "main"}.OnCluster())
	}
}
