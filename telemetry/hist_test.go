package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type dtoHistogram struct {
	count uint64
	sum   float64
}

func (d *dtoHistogram) read(t *testing.T, o prometheus.Observer) {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	d.count, d.sum = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}
