package sim

import (
	"testing"
	"time"

	"github.com/goburrow/modbus"
)

func TestSmoke(t *testing.T) {
	b := startBuilding(t, testConfig())
	if err := b.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	c := modbus.TCPClient(b.Addr("meter"))
	res, err := c.ReadInputRegisters(0x48, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%x %v", res, b.Devices())
}
