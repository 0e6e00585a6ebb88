package api_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

// readXLSX checks the response and opens the workbook with excelize.
func readXLSX(t *testing.T, rec interface{ Result() *http.Response }, filename string) (*excelize.File, []byte) {
	t.Helper()
	res := rec.Result()
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, buf.String())
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" {
		t.Errorf("content type %q", ct)
	}
	if cd := res.Header.Get("Content-Disposition"); !strings.Contains(cd, "filename="+filename) {
		t.Errorf("content disposition %q, want filename %s", cd, filename)
	}
	f, err := excelize.OpenReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("cannot open the workbook: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f, buf.Bytes()
}

func cell(t *testing.T, f *excelize.File, sheet, at string) string {
	t.Helper()
	v, err := f.GetCellValue(sheet, at)
	if err != nil {
		t.Fatalf("%s!%s: %v", sheet, at, err)
	}
	return v
}

// The monthly report as a workbook: one sheet per section, Chinese
// headings with units, numbers stored as numbers, sized columns; the same
// figures as the JSON report (TestMonthlyReportDataset).
func TestMonthlyXLSX(t *testing.T) {
	db := openStore(t)
	insertDataset(t, db)
	s := newServer(t, testBundle(t), db, nil)
	rec := call(t, s.Handler(), "acme-pm1", http.MethodGet, "/api/v1/projects/p1/energy/monthly?month=2026-07&format=xlsx")
	f, body := readXLSX(t, rec, "energy-p1-2026-07.xlsx")
	want := []string{"总览", "按类别", "按时段", "按楼栋", "设备", "总表", "环比同比", "数据缺口", "计数器事件"}
	if got := f.GetSheetList(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("sheets = %v, want %v", got, want)
	}
	if h := cell(t, f, "总览", "E1"); h != "用电量 (kWh)" {
		t.Errorf("总览!E1 = %q", h)
	}
	if h := cell(t, f, "总览", "F1"); h != "电费 (CNY)" {
		t.Errorf("总览!F1 = %q", h)
	}
	if v := cell(t, f, "总览", "A2"); v != "翠湖花园" {
		t.Errorf("project name %q", v)
	}
	// 7954.9 kWh and 5575.92 CNY, as numbers.
	for at, want := range map[string]string{"E2": "7954.9", "F2": "5575.92"} {
		if v := cell(t, f, "总览", at); v != want {
			t.Errorf("总览!%s = %q, want %s", at, v, want)
		}
		if typ, _ := f.GetCellType("总览", at); typ == excelize.CellTypeSharedString || typ == excelize.CellTypeInlineString {
			t.Errorf("总览!%s is stored as text", at)
		}
	}
	// The counter events: the pump's rollover and the elevator's new meter.
	rows, err := f.GetRows("计数器事件")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[1][0] != "p1-pump" || rows[1][2] != "计数器溢出回零" || rows[1][6] != "1" ||
		rows[2][0] != "p1-elev" || rows[2][2] != "换表" || rows[2][6] != "0.2" {
		t.Errorf("计数器事件 = %v", rows)
	}
	// Columns are sized to their content: the device name column is wider
	// than the default.
	if w, _ := f.GetColWidth("设备", "B"); w < 9 {
		t.Errorf("设备!B width %v", w)
	}
	if meters, _ := f.GetRows("总表"); len(meters) != 2 || meters[1][0] != "p1-main" || meters[1][4] != "44640" {
		t.Errorf("总表 = %v", meters)
	}
	libreOfficeReads(t, body, "44640")

	// The daily series and the HQ report come as workbooks too.
	rec = call(t, s.Handler(), "acme-admin", http.MethodGet, "/api/v1/projects/p1/energy/daily?from=2026-07-01&to=2026-07-02&format=xlsx")
	f, _ = readXLSX(t, rec, "energy-p1-2026-07-01-2026-07-02.xlsx")
	if v := cell(t, f, "每日用电", "C2"); v != "256.8" {
		t.Errorf("每日用电!C2 = %q, want 256.8", v)
	}
	if v := cell(t, f, "每日用电", "B2"); v != "工作日" {
		t.Errorf("每日用电!B2 = %q, want 工作日", v)
	}
	rec = call(t, s.Handler(), "acme-viewer", http.MethodGet, "/api/v1/energy/monthly?month=2026-07&format=xlsx")
	f, _ = readXLSX(t, rec, "energy-acme-2026-07.xlsx")
	if got := f.GetSheetList(); len(got) != 2 || got[0] != "项目排名" || got[1] != "公司汇总" {
		t.Errorf("HQ sheets = %v", got)
	}
}

// libreOfficeReads converts the workbook with LibreOffice (a real
// spreadsheet reader) and looks for a figure in what it read. Under
// CI=true a missing LibreOffice fails; PLANTROOM_SKIP_LIBREOFFICE=1 skips.
func libreOfficeReads(t *testing.T, xlsx []byte, figure string) {
	t.Helper()
	bin, err := exec.LookPath("soffice")
	if err != nil {
		if os.Getenv("PLANTROOM_SKIP_LIBREOFFICE") == "1" {
			t.Log("LibreOffice check skipped (PLANTROOM_SKIP_LIBREOFFICE=1)")
			return
		}
		t.Fatalf("LibreOffice not installed: apt-get install libreoffice-calc (or PLANTROOM_SKIP_LIBREOFFICE=1 to skip)")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "report.xlsx")
	if err := os.WriteFile(in, xlsx, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Its own profile directory: no clash with another LibreOffice running.
	cmd := exec.CommandContext(ctx, bin, "-env:UserInstallation=file://"+filepath.Join(dir, "profile"),
		"--headless", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1", "--outdir", dir, in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("LibreOffice could not read the workbook: %v\n%s", err, out)
	}
	// The last option (-1) writes every sheet to report-<sheet>.csv.
	files, _ := filepath.Glob(filepath.Join(dir, "report*.csv"))
	if len(files) < 2 {
		t.Fatalf("LibreOffice wrote %v (%s)", files, out)
	}
	var all strings.Builder
	for _, p := range files {
		b, _ := os.ReadFile(p)
		all.Write(b)
	}
	if !strings.Contains(all.String(), figure) || !strings.Contains(all.String(), "翠湖花园") {
		t.Errorf("LibreOffice read %d sheets without %s or the project's name:\n%s", len(files), figure, all.String())
	}
}
