//go:build ignore

// worldgen converts Natural Earth's 1:110m countries, as TopoJSON from the
// npm package world-atlas (countries-110m.json), into assets/world.json:
// the compact form the dashboard's map draws. It was run once; its output
// is committed, so `go build` needs neither this program nor its input.
//
//	npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
//	go run ./http/dashboard/worldgen.go package/countries-110m.json > http/dashboard/assets/world.json
//
// Output: {"source", "licence", "scale": 10, "countries": [{"rings":
// [[lon0, lat0, dlon1, dlat1, ...], ...]}]}: every ring of every polygon as
// integer tenths of a degree, the first point absolute and the others as
// differences to the previous one. Consecutive equal points are dropped.
// Antarctica is left out: the map's projection is cropped at 58°S.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
)

type topology struct {
	Transform struct {
		Scale     [2]float64 `json:"scale"`
		Translate [2]float64 `json:"translate"`
	} `json:"transform"`
	Arcs    [][][2]float64 `json:"arcs"`
	Objects struct {
		Countries struct {
			Geometries []struct {
				Type       string          `json:"type"`
				Arcs       json.RawMessage `json:"arcs"`
				Properties struct {
					Name string `json:"name"`
				} `json:"properties"`
			} `json:"geometries"`
		} `json:"countries"`
	} `json:"objects"`
}

type country struct {
	Rings [][]int `json:"rings"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run worldgen.go countries-110m.json > world.json")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	check(err)
	var t topology
	check(json.Unmarshal(b, &t))

	// Decode the quantized, delta-encoded arcs to degrees.
	arcs := make([][][2]float64, len(t.Arcs))
	for i, a := range t.Arcs {
		var x, y float64
		for _, p := range a {
			x, y = x+p[0], y+p[1]
			arcs[i] = append(arcs[i], [2]float64{
				x*t.Transform.Scale[0] + t.Transform.Translate[0],
				y*t.Transform.Scale[1] + t.Transform.Translate[1],
			})
		}
	}
	ring := func(idx []int) [][]int {
		var pts [][2]float64
		for _, i := range idx {
			a := arcs[max(i, ^i)]
			if i < 0 { // ~i: the arc reversed
				r := make([][2]float64, len(a))
				for j := range a {
					r[j] = a[len(a)-1-j]
				}
				a = r
			}
			if len(pts) > 0 {
				a = a[1:] // arcs share their end points
			}
			pts = append(pts, a...)
		}
		// Rings that cross the antimeridian (Fiji, Chukotka) jump by
		// ~360°: make them continuous, then add a copy shifted by 360° so
		// that each side of the map gets its part (the map clips to the
		// globe's outline).
		lo, hi := pts[0][0], pts[0][0]
		for k := 1; k < len(pts); k++ {
			switch d := pts[k][0] - pts[k-1][0]; {
			case d > 180:
				pts[k][0] -= 360
			case d < -180:
				pts[k][0] += 360
			}
			lo, hi = min(lo, pts[k][0]), max(hi, pts[k][0])
		}
		rings := [][]int{encode(pts, 0)}
		if hi > 180 {
			rings = append(rings, encode(pts, -360))
		}
		if lo < -180 {
			rings = append(rings, encode(pts, 360))
		}
		if rings[0] == nil {
			return nil
		}
		return rings
	}

	var out []country
	for _, g := range t.Objects.Countries.Geometries {
		if g.Properties.Name == "Antarctica" {
			continue
		}
		var polys [][][]int
		switch g.Type {
		case "Polygon":
			var p [][]int
			check(json.Unmarshal(g.Arcs, &p))
			polys = [][][]int{p}
		case "MultiPolygon":
			check(json.Unmarshal(g.Arcs, &polys))
		default:
			continue
		}
		var c country
		for _, p := range polys {
			for _, r := range p {
				c.Rings = append(c.Rings, ring(r)...)
			}
		}
		if len(c.Rings) > 0 {
			out = append(out, c)
		}
	}
	var sb strings.Builder
	sb.WriteString(`{"source":"Natural Earth 1:110m Cultural Vectors, Admin 0 - Countries, v4.1.0, via the npm package world-atlas 2.0.2 (countries-110m.json)",` +
		`"licence":"public domain (Natural Earth); world-atlas: ISC, Copyright 2013-2019 Michael Bostock",` +
		`"scale":10,"countries":[`)
	for i, c := range out {
		if i > 0 {
			sb.WriteString(",\n")
		}
		cb, err := json.Marshal(c)
		check(err)
		sb.Write(cb)
	}
	sb.WriteString("]}\n")
	_, err = os.Stdout.WriteString(sb.String())
	check(err)
}

// encode quantizes a ring to tenths of a degree, shifted by dlon, delta
// encoded; nil if it collapses to fewer than three points.
func encode(pts [][2]float64, dlon float64) []int {
	var out []int
	px, py := 0, 0
	for k, p := range pts {
		x, y := int(math.Round((p[0]+dlon)*10)), int(math.Round(p[1]*10))
		if k > 0 && x == px && y == py {
			continue
		}
		if k == 0 {
			out = append(out, x, y)
		} else {
			out = append(out, x-px, y-py)
		}
		px, py = x, y
	}
	if len(out) < 6 {
		return nil
	}
	return out
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
