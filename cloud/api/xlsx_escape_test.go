package api

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/plantroom/plantroom/cloud/energy"
)

// Names are user text: a name that Excel would read as a formula stays
// text in both the CSV and the workbook (cellText, the one rule).
func TestSpreadsheetsEscapeFormulas(t *testing.T) {
	hostile := []string{`=HYPERLINK("http://x.invalid","点击")`, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"}
	at := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	rep := &energy.Monthly{
		Project: energy.ProjectRef{ID: "p1", Name: hostile[0], Currency: "CNY"}, Month: "2026-07", From: at, To: at,
		Devices:    []energy.DeviceLine{{Device: "d1", Name: hostile[1], Category: "pump", Source: "counter", KWh: -1.5}},
		ByBuilding: []energy.BuildingLine{{Building: "b1", Name: hostile[3]}},
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, row := range monthlyCSV(rep) {
		for i := range row {
			row[i] = cellText(row[i]) // as sendCSV does
		}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var sawName, sawNumber bool
	for _, r := range rows {
		for _, c := range r {
			if len(c) > 0 && (c[0] == '=' || c[0] == '+' || c[0] == '@') {
				t.Errorf("CSV cell %q starts a formula", c)
			}
			sawName = sawName || c == "'"+hostile[0]
			sawNumber = sawNumber || c == "-1.5" // a negative number stays a number
		}
	}
	if !sawName || !sawNumber {
		t.Errorf("CSV rows %v: escaped name %v, number %v", rows, sawName, sawNumber)
	}

	f, err := buildXLSX(monthlySheets(rep))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := f.WriteToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	g, err := excelize.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, name := range g.GetSheetList() {
		rows, err := g.GetRows(name)
		if err != nil {
			t.Fatal(err)
		}
		for ri, r := range rows {
			for ci := range r {
				cell, _ := excelize.CoordinatesToCellName(ci+1, ri+1)
				if formula, _ := g.GetCellFormula(name, cell); formula != "" {
					t.Errorf("%s!%s holds formula %q", name, cell, formula)
				}
			}
		}
	}
	if v, _ := g.GetCellValue("总览", "A2"); v != "'"+hostile[0] {
		t.Errorf("总览!A2 = %q, want the escaped name", v)
	}
	if v, _ := g.GetCellValue("设备", "B2"); v != "'"+hostile[1] {
		t.Errorf("设备!B2 = %q, want the escaped name", v)
	}
	if typ, _ := g.GetCellType("设备", "F2"); typ == excelize.CellTypeSharedString || typ == excelize.CellTypeInlineString {
		t.Errorf("设备!F2 (kWh) is text, want a number")
	}
}
