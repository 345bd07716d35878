/* fedrec-sim: SVG line charts (see plot.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "sim/plot.h"

#define W 900.0
#define PANEL_H 250.0
#define TOP 56.0
#define GAP 34.0
#define LEFT 70.0
#define RIGHT 250.0
#define BOTTOM 46.0

/* Writes s with the five XML special characters escaped and control bytes
 * (not allowed in XML 1.0) replaced by '?'. */
static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
        }
    }
}

/* A step of 1, 2 or 5 times a power of ten giving about `n` ticks over span. */
static double nice_step(double span, int n)
{
    double raw = span / n;
    double p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

static const char *dash(int style)
{
    return style == FEDRECI_PLOT_DASHED   ? " stroke-dasharray=\"7 4\""
           : style == FEDRECI_PLOT_DOTTED ? " stroke-dasharray=\"2 3\""
                                          : "";
}

typedef struct frame {
    double x0, y0, w, h; /* plot area, y0 at the top */
    double xmin, xmax, ymax;
} frame;

static double px(const frame *fr, double x)
{
    return fr->x0 + (x - fr->xmin) / (fr->xmax - fr->xmin) * fr->w;
}

static double py(const frame *fr, double y)
{
    return fr->y0 + fr->h - y / fr->ymax * fr->h;
}

/* The largest y of the panel's data (0 when it has none). */
static double panel_max(const fedreci_plot_panel *p)
{
    double m = 0.0;
    for (size_t i = 0; i < p->n_series; i++)
        for (size_t j = 0; j < p->series[i].n; j++)
            if (isfinite(p->series[i].y[j]) && p->series[i].y[j] > m)
                m = p->series[i].y[j];
    for (size_t i = 0; i < p->n_levels; i++)
        if (isfinite(p->levels[i].value) && p->levels[i].value > m)
            m = p->levels[i].value;
    return m;
}

/* Axes, grid and tick labels of one panel. */
static void draw_axes(FILE *f, const frame *fr, const char *ylabel, const char *xlabel)
{
    double ys = nice_step(fr->ymax, 5), xs = nice_step(fr->xmax - fr->xmin, 8);
    fprintf(f, "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    for (double y = 0.0; y <= fr->ymax + ys * 1e-9; y += ys)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fr->x0, py(fr, y),
                fr->x0 + fr->w, py(fr, y));
    for (double x = ceil(fr->xmin / xs) * xs; x <= fr->xmax + xs * 1e-9; x += xs)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px(fr, x), fr->y0,
                px(fr, x), fr->y0 + fr->h);
    fprintf(f, "</g>\n<g class=\"ticks\" font-size=\"11\" fill=\"#333\">\n");
    for (double y = 0.0; y <= fr->ymax + ys * 1e-9; y += ys)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", fr->x0 - 6,
                py(fr, y) + 4, fabs(y) < ys * 1e-9 ? 0.0 : y);
    for (double x = ceil(fr->xmin / xs) * xs; x <= fr->xmax + xs * 1e-9; x += xs)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", px(fr, x),
                fr->y0 + fr->h + 16, x);
    fprintf(f, "</g>\n");
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#666\" stroke-width=\"1\"/>\n",
            fr->x0, fr->y0, fr->w, fr->h);
    fprintf(f,
            "<text class=\"ylabel\" x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 %.1f %.1f)\">",
            fr->x0 - 48, fr->y0 + fr->h / 2, fr->x0 - 48, fr->y0 + fr->h / 2);
    xml_text(f, ylabel);
    fprintf(f,
            "</text>\n<text class=\"xlabel\" x=\"%.1f\" y=\"%.1f\" font-size=\"12\" "
            "text-anchor=\"middle\">",
            fr->x0 + fr->w / 2, fr->y0 + fr->h + 34);
    xml_text(f, xlabel);
    fprintf(f, "</text>\n");
}

/* One series as a polyline (broken at NaN values), with its legend entry. */
static void draw_series(FILE *f, const frame *fr, const fedreci_plot_series *s, double ly)
{
    fprintf(f, "<g class=\"series\" data-label=\"");
    xml_text(f, s->label);
    fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s>\n", s->color, dash(s->style));
    int open = 0;
    for (size_t j = 0; j < s->n; j++) {
        if (!isfinite(s->y[j])) {
            if (open)
                fprintf(f, "\"/>\n");
            open = 0;
            continue;
        }
        fprintf(f, "%s%.2f,%.2f", open ? " " : "<polyline points=\"", px(fr, s->x[j]),
                py(fr, s->y[j]));
        open = 1;
    }
    if (open)
        fprintf(f, "\"/>\n");
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fr->x0 + fr->w + 14, ly,
            fr->x0 + fr->w + 42, ly);
    fprintf(f, "</g>\n<text class=\"legend\" x=\"%.1f\" y=\"%.1f\" font-size=\"12\">",
            fr->x0 + fr->w + 48, ly + 4);
    xml_text(f, s->label);
    fprintf(f, "</text>\n");
}

/* A reference level: a dashed line across the panel, labelled at its end. */
static void draw_level(FILE *f, const frame *fr, const fedreci_plot_level *l, double ly)
{
    double y = py(fr, l->value);
    fprintf(f, "<g class=\"level\" data-label=\"");
    xml_text(f, l->label);
    fprintf(f,
            "\" data-value=\"%.6f\" stroke=\"%s\" stroke-width=\"1.5\" "
            "stroke-dasharray=\"10 3 2 3\">\n",
            l->value, l->color);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n", fr->x0, y,
            fr->x0 + fr->w, y);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fr->x0 + fr->w + 14, ly,
            fr->x0 + fr->w + 42, ly);
    fprintf(f,
            "</g>\n<text class=\"level-label\" x=\"%.1f\" y=\"%.2f\" font-size=\"11\" "
            "text-anchor=\"end\" fill=\"%s\">",
            fr->x0 + fr->w - 4, y - 4, l->color);
    xml_text(f, l->label);
    fprintf(f, " %.4f</text>\n<text class=\"legend\" x=\"%.1f\" y=\"%.1f\" font-size=\"12\">",
            l->value, fr->x0 + fr->w + 48, ly + 4);
    xml_text(f, l->label);
    fprintf(f, "</text>\n");
}

fedrec_err fedreci_plot_svg(const char *path, const char *title, const char *xlabel, double xmin,
                            double xmax, const fedreci_plot_panel *panels, size_t n_panels)
{
    if (!(xmax > xmin) || !n_panels)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: plot: empty x range or no panel", path);
    FILE *f = fopen(path, "w");
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot write the plot", path);
    double h = TOP + (double)n_panels * (PANEL_H + GAP + BOTTOM) - GAP + 10;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text class=\"title\" x=\"%.1f\" y=\"28\" font-size=\"15\" text-anchor=\"middle\">",
            W, h, W, h, W / 2);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    for (size_t p = 0; p < n_panels; p++) {
        const fedreci_plot_panel *pn = &panels[p];
        double m = panel_max(pn);
        frame fr = {
            LEFT, TOP + (double)p * (PANEL_H + GAP + BOTTOM), W - LEFT - RIGHT, PANEL_H, xmin, xmax,
            1.0};
        if (m > 0.0) {
            double st = nice_step(m * 1.05, 5);
            fr.ymax = ceil(m * 1.05 / st) * st;
        }
        fprintf(f, "<g class=\"panel\" data-ylabel=\"");
        xml_text(f, pn->ylabel);
        fprintf(f, "\">\n");
        draw_axes(f, &fr, pn->ylabel, xlabel);
        double ly = fr.y0 + 12;
        for (size_t i = 0; i < pn->n_levels; i++, ly += 20)
            draw_level(f, &fr, &pn->levels[i], ly);
        for (size_t i = 0; i < pn->n_series; i++, ly += 20)
            draw_series(f, &fr, &pn->series[i], ly);
        fprintf(f, "</g>\n");
    }
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) || bad)
        return fedreci_error(FEDREC_ERR_IO, "%s: writing the plot failed", path);
    return FEDREC_OK;
}
