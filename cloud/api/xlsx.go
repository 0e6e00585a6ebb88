package api

import (
	"fmt"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/xuri/excelize/v2"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/config"
)

// mimeXLSX is the media type of an Excel workbook.
const mimeXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// sheet is one section of a report as a worksheet: Chinese headings (units
// in the heading), then rows of numbers, text, booleans or nil (empty).
type sheet struct {
	name string
	head []string
	rows [][]any
}

func (s *sheet) add(cells ...any) { s.rows = append(s.rows, cells) }

// Chinese names of categories, tariff periods, day types, sources and
// counter events as the sheets show them.
var zhNames = map[string]string{
	energy.CategoryElevator: "电梯", energy.CategoryPump: "水泵", energy.CategoryLighting: "照明", energy.CategoryOther: "其他",
	config.PeriodCriticalPeak: "尖峰", config.PeriodPeak: "峰", config.PeriodFlat: "平", config.PeriodValley: "谷", config.PeriodDeepValley: "深谷",
	config.DayWorking: "工作日", config.DayWeekend: "周末", config.DayHoliday: "节假日",
	energy.SourceCounter: "电能表读数", energy.SourcePower: "功率积分（估算）", energy.SourceNone: "无数据",
	energy.EventOutlier: "孤立异常读数（已跳过）", energy.EventRollover: "计数器溢出回零", energy.EventReplacement: "换表",
	energy.EventDiscontinuity: "读数跳变（计 0，需核查）",
}

func zh(key string) string {
	if v, ok := zhNames[key]; ok {
		return v
	}
	return key
}

func yesNo(b bool) string {
	if b {
		return "是"
	}
	return "否"
}

func optCell(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}

// sendXLSX writes the sheets as one workbook download.
func sendXLSX(c echo.Context, filename string, sheets []sheet) error {
	f, err := buildXLSX(sheets)
	if err != nil {
		return err
	}
	defer f.Close()
	buf, err := f.WriteToBuffer()
	if err != nil {
		return fmt.Errorf("cannot write workbook %q: %w", filename, err)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	return c.Blob(http.StatusOK, mimeXLSX, buf.Bytes())
}

// buildXLSX lays sheets out: a bold, frozen heading row, numbers stored as
// numbers, text escaped against formulas (cellText, as in CSV), each column as wide as
// its longest cell (a CJK character counts twice).
func buildXLSX(sheets []sheet) (*excelize.File, error) {
	f := excelize.NewFile()
	bold, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}}})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot build workbook: %w", err)
	}
	for i, s := range sheets {
		if i == 0 {
			if err := f.SetSheetName("Sheet1", s.name); err != nil {
				f.Close()
				return nil, fmt.Errorf("cannot build workbook: sheet %q: %w", s.name, err)
			}
		} else if _, err := f.NewSheet(s.name); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot build workbook: sheet %q: %w", s.name, err)
		}
		widths := make([]int, len(s.head))
		put := func(row int, cells []any) error {
			for col, v := range cells {
				if s, ok := v.(string); ok {
					v = cellText(s)
				}
				cell, err := excelize.CoordinatesToCellName(col+1, row)
				if err != nil {
					return err
				}
				if err := f.SetCellValue(s.name, cell, v); err != nil {
					return err
				}
				if col < len(widths) {
					widths[col] = max(widths[col], cellWidth(v))
				}
			}
			return nil
		}
		head := make([]any, len(s.head))
		for i, h := range s.head {
			head[i] = h
		}
		if err := put(1, head); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot build workbook: sheet %q: %w", s.name, err)
		}
		for r, row := range s.rows {
			if err := put(r+2, row); err != nil {
				f.Close()
				return nil, fmt.Errorf("cannot build workbook: sheet %q: %w", s.name, err)
			}
		}
		if len(s.head) > 0 {
			last, _ := excelize.CoordinatesToCellName(len(s.head), 1)
			if err := f.SetCellStyle(s.name, "A1", last, bold); err != nil {
				f.Close()
				return nil, fmt.Errorf("cannot build workbook: sheet %q: %w", s.name, err)
			}
			if err := f.SetPanes(s.name, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
				f.Close()
				return nil, fmt.Errorf("cannot build workbook: sheet %q: %w", s.name, err)
			}
		}
		for col, w := range widths {
			name, _ := excelize.ColumnNumberToName(col + 1)
			if err := f.SetColWidth(s.name, name, name, float64(min(max(w+2, 8), 60))); err != nil {
				f.Close()
				return nil, fmt.Errorf("cannot build workbook: sheet %q: %w", s.name, err)
			}
		}
	}
	return f, nil
}

// cellWidth is a cell's display width in characters: CJK and other wide
// characters count twice.
func cellWidth(v any) int {
	var s string
	switch x := v.(type) {
	case nil:
		return 0
	case string:
		s = x
	default:
		s = fmt.Sprint(x)
	}
	w := 0
	for _, r := range s {
		if r >= 0x1100 && utf8.RuneLen(r) >= 3 {
			w += 2
		} else {
			w++
		}
	}
	return w
}

// monthlySheets lays a project's monthly report out, one sheet per section.
func monthlySheets(r *energy.Monthly) []sheet {
	cur := r.Project.Currency
	sum := sheet{name: "总览", head: []string{"项目", "月份", "起", "止", "用电量 (kWh)", "电费 (" + cur + ")", "单位面积用电 (kWh/m²)",
		"含估算", "未完结月份", "需核查", "数据完整率 (%)"}}
	sum.add(r.Project.Name, r.Month, localTime(r.From), localTime(r.To), r.KWh, r.Cost, r.KWhPerM2,
		yesNo(r.Estimated), yesNo(r.Partial), yesNo(r.NeedsReview), energy.Round(r.Completeness.Ratio*100, 2))
	cats := sheet{name: "按类别", head: []string{"类别", "用电量 (kWh)", "电费 (" + cur + ")"}}
	for _, l := range r.ByCategory {
		cats.add(zh(l.Key), l.KWh, l.Cost)
	}
	pers := sheet{name: "按时段", head: []string{"时段", "用电量 (kWh)", "电费 (" + cur + ")"}}
	for _, l := range r.ByPeriod {
		pers.add(zh(l.Key), l.KWh, l.Cost)
	}
	bld := sheet{name: "按楼栋", head: []string{"楼栋编号", "楼栋", "建筑面积 (m²)", "用电量 (kWh)", "电费 (" + cur + ")", "单位面积用电 (kWh/m²)"}}
	for _, b := range r.ByBuilding {
		bld.add(b.Building, b.Name, b.FloorAreaM2, b.KWh, b.Cost, optCell(b.KWhPerM2))
	}
	devs := sheet{name: "设备", head: []string{"设备编号", "设备", "类别", "楼栋", "数据来源", "用电量 (kWh)", "电费 (" + cur + ")",
		"含估算", "数据完整率 (%)", "需核查"}}
	for _, d := range r.Devices {
		devs.add(d.Device, d.Name, zh(d.Category), d.Building, zh(d.Source), d.KWh, d.Cost, yesNo(d.Estimated),
			energy.Round(d.Completeness*100, 2), yesNo(d.NeedsReview))
	}
	meters := sheet{name: "总表", head: []string{"电表编号", "电表", "楼栋", "数据来源", "用电量 (kWh)", "电费 (" + cur + ")", "含估算", "需核查"}}
	for _, d := range r.MainMeters {
		meters.add(d.Device, d.Name, d.Building, zh(d.Source), d.KWh, d.Cost, yesNo(d.Estimated), yesNo(d.NeedsReview))
	}
	cmp := sheet{name: "环比同比", head: []string{"对比", "月份", "起", "止", "用电量 (kWh)", "电费 (" + cur + ")", "用电量变化 (%)", "电费变化 (%)"}}
	for _, c := range []struct {
		name string
		ch   *energy.Change
	}{{"环比（上月）", r.MonthOverMonth}, {"同比（去年同月）", r.YearOverYear}} {
		if c.ch != nil {
			cmp.add(c.name, c.ch.Month, c.ch.From, c.ch.To, c.ch.KWh, optCell(c.ch.Cost), optCell(c.ch.KWhChangePct), optCell(c.ch.CostChangePct))
		}
	}
	gaps := sheet{name: "数据缺口", head: []string{"设备编号", "起", "止", "时长 (h)", "处理"}}
	for _, g := range r.Completeness.Gaps {
		how := "无读数，未计入"
		if g.Interpolated {
			how = "两侧有读数，按时间均摊"
		}
		gaps.add(g.Device, localTime(g.From), localTime(g.To), g.Hours, how)
	}
	evs := sheet{name: "计数器事件", head: []string{"设备编号", "读数时间", "事件", "前一有效读数时间", "前值 (kWh)", "读数 (kWh)", "计入电量 (kWh)"}}
	for _, e := range r.CounterEvents {
		evs.add(e.Device, localTime(e.At), zh(e.Kind), localTime(e.PrevAt), e.From, e.To, e.KWh)
	}
	return []sheet{sum, cats, pers, bld, devs, meters, cmp, gaps, evs}
}

// dailySheets lays a daily series out: the days, and the main meters.
func dailySheets(r *energy.Daily) []sheet {
	cur := r.Project.Currency
	head := []string{"日期", "日类型", "用电量 (kWh)", "电费 (" + cur + ")"}
	for _, c := range energy.Categories {
		head = append(head, zh(c)+" (kWh)")
	}
	for _, p := range config.Periods {
		head = append(head, zh(p)+" (kWh)")
	}
	head = append(head, "含估算", "未完结")
	for _, m := range r.MainMeters {
		head = append(head, "总表 "+m.Name+" (kWh)")
	}
	days := sheet{name: "每日用电", head: head}
	for _, d := range r.Days {
		row := []any{d.Date, zh(d.DayType), d.KWh, optCell(d.Cost)}
		for _, c := range energy.Categories {
			row = append(row, d.ByCategory[c])
		}
		for _, p := range config.Periods {
			row = append(row, d.ByPeriod[p])
		}
		row = append(row, yesNo(d.Estimated), yesNo(d.Partial))
		for _, m := range r.MainMeters {
			row = append(row, d.MainMeters[m.Device])
		}
		days.add(row...)
	}
	total := []any{"合计", nil, r.KWh, optCell(r.Cost)}
	days.add(total...)
	meters := sheet{name: "总表", head: []string{"电表编号", "电表", "楼栋", "用电量 (kWh)", "含估算"}}
	for _, m := range r.MainMeters {
		meters.add(m.Device, m.Name, m.Building, m.KWh, yesNo(m.Estimated))
	}
	return []sheet{days, meters}
}

// companySheets lays the HQ report out: the ranking and the company total.
func companySheets(r *energy.CompanyMonthly) []sheet {
	cur := r.Currency
	rank := sheet{name: "项目排名", head: []string{"排名", "项目编号", "项目", "币种", "建筑面积 (m²)", "用电量 (kWh)", "电费",
		"单位面积用电 (kWh/m²)", "环比 (%)", "同比 (%)", "数据完整率 (%)", "含估算", "数据缺口 (个)", "需核查"}}
	for _, p := range r.Projects {
		rank.add(p.Rank, p.Project, p.Name, p.Currency, p.FloorAreaM2, p.KWh, p.Cost, p.KWhPerM2,
			optCell(p.MonthOverMonthPct), optCell(p.YearOverYearPct), energy.Round(p.Completeness*100, 2),
			yesNo(p.Estimated), p.Gaps, yesNo(p.NeedsReview))
	}
	total := sheet{name: "公司汇总", head: []string{"公司", "月份", "币种", "建筑面积 (m²)", "用电量 (kWh)", "电费 (" + cur + ")",
		"单位面积用电 (kWh/m²)", "环比 (%)", "同比 (%)", "数据完整率 (%)", "含估算", "未完结月份", "需核查"}}
	total.add(r.Company.Name, r.Month, r.Currency, r.FloorAreaM2, r.KWh, optCell(r.Cost), r.KWhPerM2,
		optCell(r.MonthOverMonth.KWhChangePct), optCell(r.YearOverYear.KWhChangePct), energy.Round(r.Completeness*100, 2),
		yesNo(r.Estimated), yesNo(r.Partial), yesNo(r.NeedsReview))
	return []sheet{rank, total}
}
