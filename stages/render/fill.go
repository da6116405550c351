package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"prismflow/stages/internal/pdfconf"
	"strconv"
	"strings"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/form"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// formTemplate is one category's AcroForm, read and checked at start.
type formTemplate struct {
	file   string          // FormTemplateName, for messages
	pdf    []byte          // the template as the broker supplied it
	fields map[string]bool // names of its text fields
}

// loadForms reads the form template of every category and checks that it
// is a valid PDF with AcroForm text fields, so that a missing or broken
// template stops the stage at start instead of failing every document.
func loadForms(fsys fs.FS, taxonomy []string) (map[string]formTemplate, error) {
	forms := map[string]formTemplate{}
	var missing []string
	for _, c := range taxonomy {
		name := FormTemplateName(c)
		pdf, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, fmt.Sprintf("%q (%s)", c, name))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read form template %s: %w", name, err)
		}
		fields, err := api.FormFields(bytes.NewReader(pdf), pdfconf.New())
		if err != nil {
			return nil, fmt.Errorf("form template %s: %w", name, err)
		}
		ft := formTemplate{file: name, pdf: pdf, fields: map[string]bool{}}
		for _, f := range fields {
			// Only text fields are filled; pdfcpu reports date-shaped
			// text fields as date fields, which take text just the same.
			if f.Typ == form.FTText || f.Typ == form.FTDate {
				ft.fields[f.Name] = true
			}
		}
		if len(ft.fields) == 0 {
			return nil, fmt.Errorf("form template %s has no AcroForm text fields", name)
		}
		forms[c] = ft
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no form template for categories %s", strings.Join(missing, ", "))
	}
	return forms, nil
}

// formFor is the template of a category; a category outside the taxonomy
// (an older event, a changed configuration) gets the fallback's.
func (r *Renderer) formFor(category string) formTemplate {
	if f, ok := r.forms[category]; ok {
		return f
	}
	return r.forms[r.taxonomy[len(r.taxonomy)-1]]
}

// fill writes the document's values into the template's fields, locked,
// with pdfcpu's form filler, which also draws their appearance streams.
// Fields the template does not ask for are left to the summary pages.
func fill(t formTemplate, v view) ([]byte, error) {
	var f form.Form
	for _, fv := range v.Fields {
		if !t.fields[fv.Name] || fv.Value == "" {
			continue
		}
		f.TextFields = append(f.TextFields, &form.TextField{Name: fv.Name, Value: winAnsi(formValue(fv.Name, fv.Value)), Locked: true})
	}
	if len(f.TextFields) == 0 {
		// pdfcpu refuses a fill that changes nothing; the empty
		// template is the right form for a document without values.
		return t.pdf, nil
	}
	data, err := json.Marshal(form.FormGroup{Forms: []form.Form{f}})
	if err != nil {
		return nil, fmt.Errorf("encode values for %s: %w", t.file, err)
	}
	var out bytes.Buffer
	if err := api.FillForm(bytes.NewReader(t.pdf), bytes.NewReader(data), &out, pdfconf.New()); err != nil {
		return nil, fmt.Errorf("fill %s: %w", t.file, err)
	}
	return out.Bytes(), nil
}

// formValue writes a value as an Italian form shows it: amounts
// "1.250.000,00 €", dates 01/03/2027, plates separated by commas, the
// plant type spelled out.
func formValue(name, value string) string {
	switch {
	case strings.HasSuffix(name, "_eur"):
		if s, ok := euro(value); ok {
			return s
		}
	case name == "decorrenza":
		if t, err := time.Parse("2006-01-02", value); err == nil {
			return t.Format("02/01/2006")
		}
	case name == "targhe":
		return strings.Join(strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' }), ", ")
	case name == "superficie_mq":
		return thousands(value)
	case name == "tipo_impianto":
		if l, ok := plantTypes[value]; ok {
			return l
		}
	}
	return value
}

// plantTypes spells out the tipo_impianto codes of the field conventions.
var plantTypes = map[string]string{
	"fotovoltaico":    "Impianto fotovoltaico",
	"car":             "CAR - Contractors All Risks",
	"ear":             "EAR - Erection All Risks",
	"guasti_macchine": "Guasti macchine",
	"elettronica":     "Apparecchiature elettroniche",
}

// euro formats a machine amount ("1250000", "1250000.5") as
// "1.250.000,00 €"; ok is false for anything that is not a plain
// non-negative number, which is then shown as found.
func euro(value string) (string, bool) {
	if value == "" || strings.Trim(value, "0123456789.") != "" || strings.Count(value, ".") > 1 {
		return "", false
	}
	f, err := strconv.ParseFloat(value, 64)
	if err != nil || f < 0 || f > 1e15 {
		return "", false
	}
	cents := int64(math.Round(f * 100))
	return fmt.Sprintf("%s,%02d €", thousands(strconv.FormatInt(cents/100, 10)), cents%100), true
}

// flatten turns every widget annotation into page content: its normal
// appearance stream is drawn as a form XObject where the widget was, the
// widget is removed, and so is the AcroForm. pdfcpu has no flatten
// command (it can only lock fields), but its object model makes the
// standard flattening a few lines: what a viewer showed stays, as text
// any extractor reads, and nothing can be edited by accident.
func flatten(pdf []byte) ([]byte, error) {
	ctx, err := api.ReadValidateAndOptimize(bytes.NewReader(pdf), pdfconf.New())
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	for p := 1; p <= ctx.PageCount; p++ {
		if err := flattenPage(ctx, p); err != nil {
			return nil, fmt.Errorf("page %d: %w", p, err)
		}
	}
	root, err := ctx.Catalog()
	if err != nil {
		return nil, err
	}
	root.Delete("AcroForm")
	ctx.Form = nil
	var out bytes.Buffer
	if err := api.WriteContext(ctx, &out); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	return out.Bytes(), nil
}

func flattenPage(ctx *model.Context, p int) error {
	page, _, inherited, err := ctx.PageDict(p, false)
	if err != nil {
		return err
	}
	obj, ok := page.Find("Annots")
	if !ok {
		return nil
	}
	annots, err := ctx.DereferenceArray(obj)
	if err != nil {
		return fmt.Errorf("annotations: %w", err)
	}
	xobjects, err := pageXObjects(ctx, page, inherited)
	if err != nil {
		return err
	}
	var keep types.Array
	var content bytes.Buffer
	for i, o := range annots {
		a, err := ctx.DereferenceDict(o)
		if err != nil {
			return fmt.Errorf("annotation %d: %w", i, err)
		}
		if a == nil || a.Subtype() == nil || *a.Subtype() != "Widget" {
			keep = append(keep, o)
			continue
		}
		draw, err := widgetDrawing(ctx, a, xobjects)
		if err != nil {
			return fmt.Errorf("widget %d: %w", i, err)
		}
		content.WriteString(draw)
	}
	if len(keep) == 0 {
		page.Delete("Annots")
	} else {
		page.Update("Annots", keep)
	}
	if content.Len() == 0 {
		return nil
	}
	return ctx.AppendContent(page, content.Bytes())
}

// pageXObjects is the page's own XObject resource dictionary, created
// (from inherited resources where there are some) when missing.
func pageXObjects(ctx *model.Context, page types.Dict, inherited *model.InheritedPageAttrs) (types.Dict, error) {
	var res types.Dict
	if obj, ok := page.Find("Resources"); ok {
		d, err := ctx.DereferenceDict(obj)
		if err != nil {
			return nil, fmt.Errorf("resources: %w", err)
		}
		res = d
	}
	if res == nil {
		res = types.Dict{}
		if inherited != nil && inherited.Resources != nil {
			res = inherited.Resources.Clone().(types.Dict)
		}
		page.Update("Resources", res)
	}
	if obj, ok := res.Find("XObject"); ok {
		d, err := ctx.DereferenceDict(obj)
		if err != nil {
			return nil, fmt.Errorf("XObject resources: %w", err)
		}
		if d != nil {
			return d, nil
		}
	}
	d := types.Dict{}
	res.Update("XObject", d)
	return d, nil
}

// widgetDrawing registers a widget's normal appearance as an XObject of
// the page and returns the content that draws it into the widget's
// rectangle (BBox mapped onto Rect, as a viewer does). Hidden widgets and
// widgets without an appearance draw nothing.
func widgetDrawing(ctx *model.Context, a types.Dict, xobjects types.Dict) (string, error) {
	const hidden = 1 << 1
	if f := a.IntEntry("F"); f != nil && *f&hidden != 0 {
		return "", nil
	}
	apObj, ok := a.Find("AP")
	if !ok {
		return "", nil
	}
	ap, err := ctx.DereferenceDict(apObj)
	if err != nil || ap == nil {
		return "", err
	}
	n, ok := ap.Find("N")
	if !ok {
		return "", nil
	}
	ref, ok := n.(types.IndirectRef)
	if !ok {
		// A dictionary of states (check boxes, radio buttons): draw
		// the one the widget is in.
		states, err := ctx.DereferenceDict(n)
		if err != nil || states == nil {
			return "", err
		}
		as := a.NameEntry("AS")
		if as == nil {
			return "", nil
		}
		if ref, ok = states[*as].(types.IndirectRef); !ok {
			return "", nil
		}
	}
	sd, _, err := ctx.DereferenceStreamDict(ref)
	if err != nil || sd == nil {
		return "", err
	}
	rectArr, err := ctx.DereferenceArray(a["Rect"])
	if err != nil {
		return "", fmt.Errorf("Rect: %w", err)
	}
	rect, err := ctx.RectForArray(rectArr)
	if err != nil {
		return "", fmt.Errorf("Rect: %w", err)
	}
	bboxArr, err := ctx.DereferenceArray(sd.Dict["BBox"])
	if err != nil {
		return "", fmt.Errorf("BBox: %w", err)
	}
	bbox, err := ctx.RectForArray(bboxArr)
	if err != nil {
		return "", fmt.Errorf("BBox: %w", err)
	}
	// Do applies the appearance's own Matrix; what has to fit the
	// rectangle is the BBox as that Matrix maps it.
	if m, err := ctx.DereferenceArray(sd.Dict["Matrix"]); err == nil && len(m) == 6 {
		bbox = transformedBox(ctx, m, bbox)
	}
	if bbox.Width() == 0 || bbox.Height() == 0 {
		return "", nil
	}
	name := uniqueName(xobjects, "Flat")
	xobjects[name] = ref
	sx, sy := rect.Width()/bbox.Width(), rect.Height()/bbox.Height()
	return fmt.Sprintf("q %.4f 0 0 %.4f %.4f %.4f cm /%s Do Q\n",
		sx, sy, rect.LL.X-bbox.LL.X*sx, rect.LL.Y-bbox.LL.Y*sy, name), nil
}

func uniqueName(d types.Dict, prefix string) string {
	for i := len(d); ; i++ {
		n := prefix + strconv.Itoa(i)
		if _, ok := d[n]; !ok {
			return n
		}
	}
}

// transformedBox is the bounding box of r's corners under the matrix m.
func transformedBox(ctx *model.Context, m types.Array, r *types.Rectangle) *types.Rectangle {
	var f [6]float64
	for i, o := range m {
		n, err := ctx.DereferenceNumber(o)
		if err != nil {
			return r
		}
		f[i] = n
	}
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, c := range [][2]float64{{r.LL.X, r.LL.Y}, {r.UR.X, r.LL.Y}, {r.LL.X, r.UR.Y}, {r.UR.X, r.UR.Y}} {
		x, y := f[0]*c[0]+f[2]*c[1]+f[4], f[1]*c[0]+f[3]*c[1]+f[5]
		minX, minY, maxX, maxY = math.Min(minX, x), math.Min(minY, y), math.Max(maxX, x), math.Max(maxY, y)
	}
	return types.NewRectangle(minX, minY, maxX, maxY)
}

// winAnsi prepares a value for a field drawn in a standard PDF font.
// pdfcpu writes such a field in WinAnsi (cp1252), which has "€" and the
// typographic quotes, but it switches to a font it would have to load
// from the user's font folder as soon as a rune lies above U+00FF, and a
// service has no such folder. So the cp1252 runes above U+00FF are passed
// as the C1 code points pdfcpu writes out as those very bytes (€ is
// U+0080 here, byte 0x80 in the PDF, "€" on the page), and other runes,
// which no standard font can show, become "?".
func winAnsi(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch c, ok := cp1252[r]; {
		case ok:
			b.WriteRune(rune(c))
		case r >= 0x80 && r <= 0x9f:
			b.WriteByte(' ')
		case r <= 0xff:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// cp1252 maps the runes above U+00FF that Windows-1252 has to their byte.
var cp1252 = map[rune]byte{
	'€': 0x80, '‚': 0x82, 'ƒ': 0x83, '„': 0x84, '…': 0x85, '†': 0x86, '‡': 0x87, 'ˆ': 0x88, '‰': 0x89,
	'Š': 0x8a, '‹': 0x8b, 'Œ': 0x8c, 'Ž': 0x8e, '‘': 0x91, '’': 0x92, '“': 0x93, '”': 0x94, '•': 0x95,
	'–': 0x96, '—': 0x97, '˜': 0x98, '™': 0x99, 'š': 0x9a, '›': 0x9b, 'œ': 0x9c, 'ž': 0x9e, 'Ÿ': 0x9f,
}
