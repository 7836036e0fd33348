// Renders every case of cases.json with Go's text/template and the helper
// functions eKuiper registers (re-implemented minimally below, following
// eKuiper's and Sprig's source), and writes expected.json. Run by
// regen.sh; the Rust test (tests/template_golden.rs) only reads the result.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

type testCase struct {
	Name     string          `json:"name"`
	Template string          `json:"template"`
	Data     json.RawMessage `json:"data"`
}

// Oort keeps JSON integers as int64 and other numbers as float64.
func convert(v interface{}) interface{} {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []interface{}:
		for i := range x {
			x[i] = convert(x[i])
		}
		return x
	case map[string]interface{}:
		for k := range x {
			x[k] = convert(x[k])
		}
		return x
	}
	return v
}

func toInt64(v interface{}) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	case float64:
		return int64(x)
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		s := x
		if i := strings.Index(s, "."); i >= 0 && strings.Trim(s[i+1:], "0") == "" {
			s = s[:i]
		}
		n, err := strconv.ParseInt(s, 0, 0)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

func toFloat64(v interface{}) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		return x
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0
		}
		return f
	}
	return 0
}

func strval(v interface{}) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprintf("%v", v)
	}
}

func empty(given interface{}) bool {
	g := reflect.ValueOf(given)
	if !g.IsValid() {
		return true
	}
	switch g.Kind() {
	case reflect.Array, reflect.Slice, reflect.Map, reflect.String:
		return g.Len() == 0
	case reflect.Bool:
		return !g.Bool()
	case reflect.Int, reflect.Int64:
		return g.Int() == 0
	case reflect.Float64:
		return g.Float() == 0
	default:
		return g.IsNil()
	}
}

func toJson(v interface{}) string {
	out, _ := json.Marshal(v)
	return string(out)
}

// eKuiper's base64.
func base64Encode(para interface{}) (string, error) {
	v := reflect.ValueOf(para)
	if !v.IsValid() {
		return "", fmt.Errorf("based64 error for nil")
	}
	switch v.Kind() {
	case reflect.Bool:
		return base64.StdEncoding.EncodeToString([]byte(strconv.FormatBool(v.Bool()))), nil
	case reflect.Int, reflect.Int64:
		return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(v.Int(), 10))), nil
	case reflect.Float64:
		return base64.StdEncoding.EncodeToString([]byte(strconv.FormatFloat(v.Float(), 'f', -1, 64))), nil
	case reflect.String:
		return base64.StdEncoding.EncodeToString([]byte(v.String())), nil
	case reflect.Map:
		a, err := json.Marshal(para)
		if err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(a), nil
	default:
		return "", fmt.Errorf("Unsupported data type %s for base64 function.", v.Kind())
	}
}

func strslice(v interface{}) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []interface{}:
		b := make([]string, 0, len(x))
		for _, s := range x {
			if s != nil {
				b = append(b, strval(s))
			}
		}
		return b
	case nil:
		return []string{}
	default:
		return []string{strval(v)}
	}
}

func indent(spaces int, v string) string {
	pad := strings.Repeat(" ", spaces)
	return pad + strings.Replace(v, "\n", "\n"+pad, -1)
}

func funcs() template.FuncMap {
	return template.FuncMap{
		"json":   toJson,
		"toJson": toJson,
		"base64": base64Encode,
		"b64enc": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"b64dec": func(s string) string {
			d, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return err.Error()
			}
			return string(d)
		},
		"add": func(i ...interface{}) int64 {
			var a int64
			for _, b := range i {
				a += toInt64(b)
			}
			return a
		},
		"add1": func(i interface{}) int64 { return toInt64(i) + 1 },
		"sub":  func(a, b interface{}) int64 { return toInt64(a) - toInt64(b) },
		"mul": func(a interface{}, v ...interface{}) int64 {
			val := toInt64(a)
			for _, b := range v {
				val = val * toInt64(b)
			}
			return val
		},
		"div": func(a, b interface{}) int64 { return toInt64(a) / toInt64(b) },
		"mod": func(a, b interface{}) int64 { return toInt64(a) % toInt64(b) },
		"max": func(a interface{}, i ...interface{}) int64 {
			aa := toInt64(a)
			for _, b := range i {
				if bb := toInt64(b); bb > aa {
					aa = bb
				}
			}
			return aa
		},
		"min": func(a interface{}, i ...interface{}) int64 {
			aa := toInt64(a)
			for _, b := range i {
				if bb := toInt64(b); bb < aa {
					aa = bb
				}
			}
			return aa
		},
		"floor": func(a interface{}) float64 { return math.Floor(toFloat64(a)) },
		"ceil":  func(a interface{}) float64 { return math.Ceil(toFloat64(a)) },
		"round": func(a interface{}, p int, rOpt ...float64) float64 {
			roundOn := .5
			if len(rOpt) > 0 {
				roundOn = rOpt[0]
			}
			pow := math.Pow(10, float64(p))
			digit := pow * toFloat64(a)
			_, div := math.Modf(digit)
			var r float64
			if div >= roundOn {
				r = math.Ceil(digit)
			} else {
				r = math.Floor(digit)
			}
			return r / pow
		},
		"int":      func(v interface{}) int { return int(toInt64(v)) },
		"int64":    toInt64,
		"float64":  toFloat64,
		"atoi":     func(a string) int { i, _ := strconv.Atoi(a); return i },
		"toString": strval,
		"upper":    strings.ToUpper,
		"lower":    strings.ToLower,
		"title":    strings.Title,
		"trim":     strings.TrimSpace,
		"trimAll":  func(a, b string) string { return strings.Trim(b, a) },
		"trimall":  func(a, b string) string { return strings.Trim(b, a) },
		"trimPrefix": func(a, b string) string { return strings.TrimPrefix(b, a) },
		"trimSuffix": func(a, b string) string { return strings.TrimSuffix(b, a) },
		"contains":   func(substr string, str string) bool { return strings.Contains(str, substr) },
		"hasPrefix":  func(substr string, str string) bool { return strings.HasPrefix(str, substr) },
		"hasSuffix":  func(substr string, str string) bool { return strings.HasSuffix(str, substr) },
		"replace":    func(o, n, src string) string { return strings.Replace(src, o, n, -1) },
		"repeat":     func(count int, str string) string { return strings.Repeat(str, count) },
		"substr": func(start, end int, s string) string {
			if start < 0 {
				return s[:end]
			}
			if end < 0 || end > len(s) {
				return s[start:]
			}
			return s[start:end]
		},
		"trunc": func(c int, s string) string {
			if c < 0 && len(s)+c > 0 {
				return s[len(s)+c:]
			}
			if c >= 0 && len(s) > c {
				return s[:c]
			}
			return s
		},
		"nospace": func(s string) string {
			return strings.Map(func(r rune) rune {
				if strings.ContainsRune(" \t\n\r\v\f", r) {
					return -1
				}
				return r
			}, s)
		},
		"quote": func(str ...interface{}) string {
			out := make([]string, 0, len(str))
			for _, s := range str {
				if s != nil {
					out = append(out, fmt.Sprintf("%q", strval(s)))
				}
			}
			return strings.Join(out, " ")
		},
		"squote": func(str ...interface{}) string {
			out := make([]string, 0, len(str))
			for _, s := range str {
				if s != nil {
					out = append(out, fmt.Sprintf("'%v'", s))
				}
			}
			return strings.Join(out, " ")
		},
		"cat": func(v ...interface{}) string {
			out := make([]string, 0, len(v))
			for _, s := range v {
				if s != nil {
					out = append(out, strval(s))
				}
			}
			return strings.Join(out, " ")
		},
		"indent":    indent,
		"nindent":   func(spaces int, v string) string { return "\n" + indent(spaces, v) },
		"join":      func(sep string, v interface{}) string { return strings.Join(strslice(v), sep) },
		"splitList": func(sep, orig string) []string { return strings.Split(orig, sep) },
		"default": func(d interface{}, given ...interface{}) interface{} {
			if len(given) == 0 || empty(given[0]) {
				return d
			}
			return given[0]
		},
		"empty": empty,
		"coalesce": func(v ...interface{}) interface{} {
			for _, val := range v {
				if !empty(val) {
					return val
				}
			}
			return nil
		},
		"ternary": func(vt interface{}, vf interface{}, v bool) interface{} {
			if v {
				return vt
			}
			return vf
		},
		"list": func(v ...interface{}) []interface{} { return v },
		"dict": func(v ...interface{}) map[string]interface{} {
			d := map[string]interface{}{}
			for i := 0; i < len(v); i += 2 {
				key := strval(v[i])
				if i+1 >= len(v) {
					d[key] = ""
					continue
				}
				d[key] = v[i+1]
			}
			return d
		},
		"hasKey": func(d map[string]interface{}, key string) bool { _, ok := d[key]; return ok },
		"get": func(d map[string]interface{}, key string) interface{} {
			if val, ok := d[key]; ok {
				return val
			}
			return ""
		},
		"first": func(list interface{}) interface{} {
			l := reflect.ValueOf(list)
			if l.Kind() != reflect.Slice {
				panic(fmt.Errorf("Cannot find first on type %s", l.Kind()))
			}
			if l.Len() == 0 {
				return nil
			}
			return l.Index(0).Interface()
		},
		"last": func(list interface{}) interface{} {
			l := reflect.ValueOf(list)
			if l.Kind() != reflect.Slice {
				panic(fmt.Errorf("Cannot find last on type %s", l.Kind()))
			}
			if l.Len() == 0 {
				return nil
			}
			return l.Index(l.Len() - 1).Interface()
		},
		"slice": func(list interface{}, indices ...interface{}) interface{} {
			l := reflect.ValueOf(list)
			if l.Kind() != reflect.Slice {
				panic(fmt.Errorf("list should be type of slice or array but %s", l.Kind()))
			}
			if l.Len() == 0 {
				return nil
			}
			start, end := 0, l.Len()
			if len(indices) > 0 {
				start = int(toInt64(indices[0]))
			}
			if len(indices) > 1 {
				end = int(toInt64(indices[1]))
			}
			return l.Slice(start, end).Interface()
		},
	}
}

func main() {
	raw, err := os.ReadFile("cases.json")
	if err != nil {
		panic(err)
	}
	var cases []testCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	out := map[string]interface{}{}
	names := []string{}
	for _, c := range cases {
		dec := json.NewDecoder(bytes.NewReader(c.Data))
		dec.UseNumber()
		var data interface{}
		if err := dec.Decode(&data); err != nil {
			panic(fmt.Sprintf("%s: %v", c.Name, err))
		}
		data = convert(data)
		t, err := template.New("sink").Funcs(funcs()).Parse(c.Template)
		if err != nil {
			// A parse error: the Rust engine must refuse the template too.
			out[c.Name] = map[string]string{"parse_error": err.Error()}
			names = append(names, c.Name)
			continue
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			// A rendering error: the Rust engine must fail too.
			out[c.Name] = map[string]string{"error": err.Error()}
		} else {
			out[c.Name] = b.String()
		}
		names = append(names, c.Name)
	}
	sort.Strings(names)
	enc, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile("expected.json", append(enc, '\n'), 0o644); err != nil {
		panic(err)
	}
	fmt.Printf("%d cases rendered\n", len(names))
}
