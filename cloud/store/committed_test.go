package store

import (
	"fmt"
	"testing"
)

// CommittedCRCs answers many gateways' keys in one query: exactly the
// committed ones, with their CRCs; another epoch or seq is not committed.
func TestCommittedCRCsManyGateways(t *testing.T) {
	db := openTestDB(t, SchemaOptions{})
	ctx := testCtx(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var marks []CommittedBatch
	for g := 0; g < 300; g++ {
		for seq := uint64(1); seq <= 5; seq++ {
			marks = append(marks, CommittedBatch{Gateway: fmt.Sprintf("gw-%03d", g), Epoch: uint64(1000 + g), Seq: seq,
				CRC: uint32(g*10) + uint32(seq), CommittedMs: 1})
		}
	}
	// A batch marked twice (two replicas) is one key.
	marks = append(marks, marks[0])
	if err := db.InsertCommitted(ctx, marks); err != nil {
		t.Fatal(err)
	}
	var ask []BatchKey
	want := map[BatchKey]uint32{}
	for g := 0; g < 300; g++ {
		gw := fmt.Sprintf("gw-%03d", g)
		for seq := uint64(4); seq <= 7; seq++ { // 4 and 5 committed, 6 and 7 not
			k := BatchKey{Gateway: gw, Epoch: uint64(1000 + g), Seq: seq}
			ask = append(ask, k)
			if seq <= 5 {
				want[k] = uint32(g*10) + uint32(seq)
			}
		}
		ask = append(ask, BatchKey{Gateway: gw, Epoch: uint64(2000 + g), Seq: 1}) // another epoch
	}
	ask = append(ask, BatchKey{Gateway: "gw-none", Epoch: 1, Seq: 1})
	got, err := db.CommittedCRCs(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d keys committed, want %d", len(got), len(want))
	}
	for k, crc := range want {
		if got[k] != crc {
			t.Errorf("%+v: crc %d, want %d", k, got[k], crc)
		}
	}
	if got, err := db.CommittedCRCs(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("no keys: %v, %v", got, err)
	}
}
