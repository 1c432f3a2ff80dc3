package drift

import (
	"net/http"
)

// ReportHandler serves the HTML drift report on the admin port: /drift lists the models,
// /drift/<model> shows one.
func (s *Server) ReportHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "report not built yet", http.StatusNotImplemented)
	})
}
