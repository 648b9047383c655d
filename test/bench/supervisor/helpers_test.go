package main

import "testing"

// The harness itself needs root and minutes; these cover its pure helpers.

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte("42 (a (weird) name) Z 1 42 42 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 100 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "a (weird) name" || st.State != 'Z' || st.PPid != 1 || st.UTime != 7 || st.STime != 3 {
		t.Fatalf("got %+v", st)
	}
	if _, err := parseStat([]byte("42 (x")); err == nil {
		t.Fatal("want error on truncated stat")
	}
}

func TestQuantile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	if got := median(v); got != 3 {
		t.Fatalf("median = %v", got)
	}
	if got := median([]float64{1, 2, 3, 4}); got != 2.5 {
		t.Fatalf("even median = %v", got)
	}
	if got := quantile(v, 0.9); got < 4.5 || got > 5 {
		t.Fatalf("p90 = %v", got)
	}
	if v[0] != 5 {
		t.Fatal("quantile sorted its input in place")
	}
}

func TestFmt(t *testing.T) {
	for in, want := range map[float64]string{0.271: "0.27", 12.34: "12.3", 523.4: "523", 1166.2: "1,166", 5006: "5,006"} {
		if got := fmtNum(in); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", in, got, want)
		}
	}
	if fmtInt(0) != "0" || fmtInt(1000) != "1,000" {
		t.Errorf("fmtInt: %q %q", fmtInt(0), fmtInt(1000))
	}
}
