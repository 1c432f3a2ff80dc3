package trainer

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/streaming-mlops/mlops/services/trainer/internal/evaluate"
)

// Plot colours.
var (
	colBlue  = color.RGBA{31, 119, 180, 255}
	colGrey  = color.RGBA{150, 150, 150, 255}
	colAxis  = color.RGBA{40, 40, 40, 255}
	colGrid  = color.RGBA{230, 230, 230, 255}
	colGreen = color.RGBA{44, 160, 44, 255}
)

// Series is one line of a chart.
type Series struct {
	Name   string
	Points []evaluate.Point
	Color  color.Color
	// Dashed draws a dashed line (used for references such as the diagonal).
	Dashed bool
}

// canvas is an RGBA image with the drawing helpers the charts need.
type canvas struct {
	img *image.RGBA
}

func newCanvas(w, h int) *canvas {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	return &canvas{img: img}
}

func (c *canvas) text(x, y int, s string, col color.Color) {
	d := &font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func textWidth(s string) int { return len(s) * 7 }

func (c *canvas) rect(r image.Rectangle, col color.Color) {
	draw.Draw(c.img, r, image.NewUniform(col), image.Point{}, draw.Over)
}

// line draws a 2-pixel line from (x0,y0) to (x1,y1); dashed lines skip every other 6 px.
func (c *canvas) line(x0, y0, x1, y1 float64, col color.Color, dashed bool) {
	dx, dy := x1-x0, y1-y0
	n := int(math.Max(math.Abs(dx), math.Abs(dy))) + 1
	for i := 0; i <= n; i++ {
		if dashed && (i/6)%2 == 1 {
			continue
		}
		f := float64(i) / float64(n)
		x, y := int(math.Round(x0+f*dx)), int(math.Round(y0+f*dy))
		c.img.Set(x, y, col)
		c.img.Set(x+1, y, col)
		c.img.Set(x, y+1, col)
	}
}

func (c *canvas) png() ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, c.img); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// LineChart draws series on the unit square [0,1]x[0,1] (ROC, PR, calibration) with a grid,
// axis labels and a legend, and returns a PNG.
func LineChart(title, xLabel, yLabel string, series []Series) ([]byte, error) {
	const w, h, left, right, top, bottom = 640, 520, 60, 20, 40, 50
	c := newCanvas(w, h)
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	px := func(x float64) float64 { return float64(left) + math.Min(math.Max(x, 0), 1)*pw }
	py := func(y float64) float64 { return float64(h-bottom) - math.Min(math.Max(y, 0), 1)*ph }
	for i := 0; i <= 10; i++ {
		v := float64(i) / 10
		c.line(px(v), py(0), px(v), py(1), colGrid, false)
		c.line(px(0), py(v), px(1), py(v), colGrid, false)
		if i%2 == 0 {
			lbl := strconv.FormatFloat(v, 'f', 1, 64)
			c.text(int(px(v))-textWidth(lbl)/2, h-bottom+16, lbl, colAxis)
			c.text(left-8-textWidth(lbl), int(py(v))+4, lbl, colAxis)
		}
	}
	c.line(px(0), py(0), px(1), py(0), colAxis, false)
	c.line(px(0), py(0), px(0), py(1), colAxis, false)
	c.text((w-textWidth(title))/2, 24, title, colAxis)
	c.text(left+int(pw)/2-textWidth(xLabel)/2, h-12, xLabel, colAxis)
	c.text(4, top-10, yLabel, colAxis)
	for si, s := range series {
		for i := 1; i < len(s.Points); i++ {
			a, b := s.Points[i-1], s.Points[i]
			c.line(px(a.X), py(a.Y), px(b.X), py(b.Y), s.Color, s.Dashed)
		}
		if len(s.Points) == 1 {
			p := s.Points[0]
			c.rect(image.Rect(int(px(p.X))-2, int(py(p.Y))-2, int(px(p.X))+3, int(py(p.Y))+3), s.Color)
		}
		ly := top + 16 + si*16
		c.rect(image.Rect(w-right-170, ly-6, w-right-150, ly-3), s.Color)
		c.text(w-right-144, ly, s.Name, colAxis)
	}
	return c.png()
}

// markers turns points into a series drawn as points joined by lines (calibration).
func markers(name string, pts []evaluate.Point, col color.Color) Series {
	return Series{Name: name, Points: pts, Color: col}
}

// BarChart draws a horizontal bar per label (feature importance) and returns a PNG.
func BarChart(title string, labels []string, values []float64) ([]byte, error) {
	const w, right, top, rowH = 720, 90, 40, 22
	left := 20
	for _, l := range labels {
		left = max(left, textWidth(l)+16)
	}
	h := top + rowH*len(labels) + 20
	c := newCanvas(w, h)
	c.text((w-textWidth(title))/2, 24, title, colAxis)
	var maxV float64
	for _, v := range values {
		maxV = math.Max(maxV, v)
	}
	pw := float64(w - left - right)
	for i, l := range labels {
		y := top + i*rowH
		c.text(left-8-textWidth(l), y+15, l, colAxis)
		bw := 0
		if maxV > 0 {
			bw = int(values[i] / maxV * pw)
		}
		c.rect(image.Rect(left, y+4, left+max(bw, 1), y+rowH-2), colBlue)
		c.text(left+bw+6, y+15, strconv.FormatFloat(values[i], 'g', 4, 64), colAxis)
	}
	c.line(float64(left), float64(top), float64(left), float64(h-20), colAxis, false)
	return c.png()
}
