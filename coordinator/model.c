#include "model.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void fedreci_model_encode_y(const float *y, size_t n_words, uint8_t *buf)
{
    for (size_t i = 0; i < n_words; i++) {
        uint32_t w;
        memcpy(&w, &y[i], 4);
        put_u32le(buf + 4 * i, w);
    }
}

void fedreci_model_decode_y(const uint8_t *buf, size_t n_words, float *y)
{
    for (size_t i = 0; i < n_words; i++) {
        uint32_t w = get_u32le(buf + 4 * i);
        memcpy(&y[i], &w, 4);
    }
}

void fedreci_model_checksum(const float *y, uint32_t n_items, uint32_t k,
                            uint8_t out[FEDRECI_MODEL_CHECKSUM_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FEDRECI_MODEL_CHECKSUM_BYTES);
    size_t n = (size_t)n_items * k;
    uint8_t chunk[4096];
    size_t done = 0;
    while (done < n) {
        size_t m = n - done;
        if (m > sizeof chunk / 4)
            m = sizeof chunk / 4;
        fedreci_model_encode_y(y + done, m, chunk);
        crypto_generichash_update(&st, chunk, m * 4);
        done += m;
    }
    crypto_generichash_final(&st, out, FEDRECI_MODEL_CHECKSUM_BYTES);
}

void fedreci_model_clear(fedreci_model *m)
{
    if (!m)
        return;
    free(m->y);
    memset(m, 0, sizeof *m);
}

const char *fedreci_model_origin_name(fedreci_model_origin o)
{
    switch (o) {
    case FEDRECI_MODEL_INIT:
        return "init";
    case FEDRECI_MODEL_ROUND:
        return "round";
    case FEDRECI_MODEL_CATALOG:
        return "catalog";
    }
    return "unknown";
}
