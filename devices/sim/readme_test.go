package sim

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/config"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the register tables in devices/README.md from the templates")

const (
	tablesBegin = "<!-- register tables: generated from configs/templates by go test ./devices/sim -run Readme -update-readme -->"
	tablesEnd   = "<!-- end of register tables -->"
)

var functionCodes = map[string]string{
	config.RegCoil: "coil (01)", config.RegDiscrete: "discrete input (02)",
	config.RegHolding: "holding (03)", config.RegInput: "input (04)",
}

// registerTables renders every template's map as Markdown tables.
func registerTables(ts config.Templates) string {
	ids := make([]string, 0, len(ts))
	for id := range ts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		t := ts[id]
		fmt.Fprintf(&b, "\n#### `%s`: %s (%s, %s)\n\n", t.ID, t.Name, t.Kind, t.Protocol)
		if t.Energy != nil {
			fmt.Fprintf(&b, "Energy: counter `%s`, power `%s` (%s).\n\n", t.Energy.Counter, t.Energy.Power, t.Energy.PowerUnit)
		}
		if t.Protocol == config.ProtoModbus {
			b.WriteString("| address | mbpoll ref | register (function) | type | scale | unit | metric | meaning |\n")
			b.WriteString("|---|---|---|---|---|---|---|---|\n")
			for _, pt := range t.Points {
				typ := pt.Type
				if pt.Register == config.RegHolding || pt.Register == config.RegInput {
					if pt.Registers() > 1 {
						typ += fmt.Sprintf(" (%d regs, %s-endian words)", pt.Registers(), pt.WordOrder)
					}
					if pt.ByteOrder == "little" {
						typ += ", bytes swapped"
					}
				}
				fmt.Fprintf(&b, "| %d (0x%04X) | %d | %s | %s | %s | %s | `%s` | %s |\n",
					pt.Address, pt.Address, int(pt.Address)+1, functionCodes[pt.Register], typ,
					scaleText(pt.Scale, pt.Offset), pt.Unit, pt.Metric, meaning(pt.Description, pt.States, pt.Counter, pt.Rollover))
			}
			continue
		}
		fmt.Fprintf(&b, "Format `%s`. `{topic}` is the device's `topic`.\n\n", t.MQTT.Format)
		b.WriteString("| topic | JSON path | scale | unit | metric | meaning |\n|---|---|---|---|---|---|\n")
		for _, f := range t.MQTT.Fields {
			path := "`" + f.Path + "`"
			if f.Path == "" {
				path = "whole payload"
			}
			var m []string
			for k, v := range f.Map {
				m = append(m, fmt.Sprintf("%s → %g", k, v))
			}
			sort.Strings(m)
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | `%s` | %s |\n", f.Topic, path, scaleText(f.Scale, f.Offset), f.Unit, f.Metric,
				meaning(strings.Join(m, ", "), nil, f.Counter, f.Rollover))
		}
	}
	return b.String()
}

func scaleText(scale, offset float64) string {
	s := fmt.Sprintf("%g", config.EffectiveScale(scale))
	if offset != 0 {
		s += fmt.Sprintf(" + %g", offset)
	}
	return s
}

func meaning(desc string, states map[int]string, counter bool, rollover float64) string {
	var parts []string
	if desc != "" {
		parts = append(parts, desc)
	}
	if len(states) > 0 {
		keys := make([]int, 0, len(states))
		for k := range states {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		var s []string
		for _, k := range keys {
			s = append(s, fmt.Sprintf("%d %s", k, states[k]))
		}
		parts = append(parts, strings.Join(s, ", "))
	}
	if counter {
		c := "counter"
		if rollover > 0 {
			c += ", rolls over at " + strconv.FormatFloat(rollover, 'f', -1, 64)
		}
		parts = append(parts, c)
	}
	return strings.ReplaceAll(strings.Join(parts, "; "), "|", "/")
}

// TestReadmeRegisterTables keeps devices/README.md's register tables equal
// to the templates the simulator serves.
func TestReadmeRegisterTables(t *testing.T) {
	path := filepath.Join("..", "README.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, tablesBegin), strings.Index(doc, tablesEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the register table markers", path)
	}
	want := registerTables(loadTemplates(t)) + "\n"
	got := doc[i+len(tablesBegin) : j]
	if got == want {
		return
	}
	if *updateReadme {
		doc = doc[:i+len(tablesBegin)] + want + doc[j:]
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s register tables differ from configs/templates; run go test ./devices/sim -run Readme -update-readme", path)
}
