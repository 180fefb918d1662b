package web

import (
	"sort"
	"time"
)

// chart is the SVG bar chart of a site's nights: per backup day, the
// originals' bytes beside the bytes their ingests stored. The template
// draws it from these numbers (no markup is made here), so every label
// passes through html/template like the rest of the page.
type chart struct {
	Width, Height int
	Bars          []chartBar
	Max           uint64 // bytes at the top of the scale
	Base          int    // y of the axis
	Days          int
}

type chartBar struct {
	Day              string
	X, W             int // of each of the two bars
	OrigY, OrigH     int
	StoredX          int
	StoredY, StoredH int
	Orig, Stored     uint64
	Label            bool // the day is written under the bar
}

// Chart geometry, in SVG units.
const (
	chartDays   = 60 // the newest nights shown
	chartHeight = 220
	chartTop    = 20
	chartBase   = 190
	chartLeft   = 70
	chartSlot   = 30
)

func makeChart(snaps []*snapshotInfo) *chart {
	type day struct{ orig, stored uint64 }
	days := map[string]*day{}
	for _, sn := range snaps {
		if sn.BackupTime == nil || sn.Rejected != "" {
			continue
		}
		k := sn.BackupTime.UTC().Format(time.DateOnly)
		d := days[k]
		if d == nil {
			d = &day{}
			days[k] = d
		}
		d.orig += sn.Size
		d.stored += sn.NewBytes
	}
	if len(days) == 0 {
		return nil
	}
	keys := make([]string, 0, len(days))
	for k := range days {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > chartDays {
		keys = keys[len(keys)-chartDays:]
	}
	c := &chart{Height: chartHeight, Base: chartBase, Days: len(keys), Width: chartLeft + chartSlot*len(keys) + 10}
	for _, k := range keys {
		c.Max = max(c.Max, days[k].orig, days[k].stored)
	}
	scale := func(n uint64) int {
		if c.Max == 0 {
			return 0
		}
		return int(n * uint64(chartBase-chartTop) / c.Max)
	}
	every := max(1, len(keys)/8)
	for i, k := range keys {
		d := days[k]
		x := chartLeft + i*chartSlot
		b := chartBar{Day: k, X: x, W: chartSlot/2 - 1, StoredX: x + chartSlot/2 - 1, Orig: d.orig, Stored: d.stored,
			Label: i%every == 0}
		b.OrigH, b.StoredH = scale(d.orig), scale(d.stored)
		b.OrigY, b.StoredY = chartBase-b.OrigH, chartBase-b.StoredH
		c.Bars = append(c.Bars, b)
	}
	return c
}
