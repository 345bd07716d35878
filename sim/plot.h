/* fedrec-sim: line charts written as SVG by fedrec itself (no external
 * program). Every text is XML-escaped and the output path is only ever
 * passed to fopen, so nothing from the command line is interpreted.
 *
 * A chart is a title over one or more panels stacked vertically; each panel
 * has its own y axis (0 to a rounded maximum of its data), a shared x range,
 * light grid lines and a legend on its right. A series is a polyline
 * (solid, dashed or dotted); a reference level (a baseline) is a horizontal
 * dashed line across the panel with its label and value written at its
 * right end, so it reads as a line of data, not as a grid line. */
#ifndef FEDREC_SIM_PLOT_H
#define FEDREC_SIM_PLOT_H

#include <stddef.h>

#include "fedrec/fedrec.h"

enum { FEDRECI_PLOT_SOLID = 0, FEDRECI_PLOT_DASHED = 1, FEDRECI_PLOT_DOTTED = 2 };

/* One polyline: points (x[i], y[i]) for i < n, in the given order; NaN y
 * values are skipped (the line is broken there). label is shown in the
 * legend; color is an SVG color such as "#1f77b4". */
typedef struct fedreci_plot_series {
    const char *label;
    const double *x, *y;
    size_t n;
    const char *color;
    int style; /* FEDRECI_PLOT_SOLID, _DASHED, _DOTTED */
} fedreci_plot_series;

/* A horizontal reference line at y = value, labelled "label value". */
typedef struct fedreci_plot_level {
    const char *label;
    double value;
    const char *color;
} fedreci_plot_level;

typedef struct fedreci_plot_panel {
    const char *ylabel;
    const fedreci_plot_series *series;
    size_t n_series;
    const fedreci_plot_level *levels;
    size_t n_levels;
} fedreci_plot_panel;

/* Writes the chart to path (created or truncated). x runs over
 * [xmin, xmax] (xmax > xmin) in every panel. Returns FEDREC_ERR_IO naming the
 * path when it cannot be written, FEDREC_ERR_INVALID on a bad range. */
FEDREC_NODISCARD fedrec_err fedreci_plot_svg(const char *path, const char *title,
                                             const char *xlabel, double xmin, double xmax,
                                             const fedreci_plot_panel *panels, size_t n_panels);

#endif
