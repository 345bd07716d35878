#!/usr/bin/env python3
"""Writes one purchase log in three layouts, for tests/sim_layouts_test.sh.

Usage: sim_layouts.py UCI_LOG.csv.gz OUTDIR

From the UCI Online Retail log it keeps the rows that are plain purchases
(a customer, an invoice not starting with C, quantity and price > 0, a stock
code starting with a digit, and invoices that are exactly one (customer,
time) so that baskets agree in every layout) and writes them as
  uci.csv        the UCI layout, InvoiceDate as the spreadsheet's M/D/YYYY H:MM
  generic.csv    renamed and reordered columns: when,sku,qty,shopper, times
                 in ISO 8601 with a +01:00 offset (the same instants)
  movielens.csv  userId,movieId,rating,timestamp: rating 5, Unix seconds,
                 plus one row rated 2 per 10 purchases (below the default
                 threshold 4: dropped, never a purchase)
Every purchase has quantity 1 (MovieLens has no quantities), so all three
describe the same purchases. Standard library only.
"""
import csv
import datetime
import gzip
import os
import sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
rows = []
with gzip.open(src, "rt", newline="", encoding="utf-8") as f:
    for r in csv.DictReader(f):
        if not r["CustomerID"].strip() or r["InvoiceNo"].startswith("C"):
            continue
        if float(r["Quantity"]) <= 0 or float(r["UnitPrice"]) <= 0:
            continue
        if not r["StockCode"][:1].isdigit():
            continue
        t = datetime.datetime.strptime(r["InvoiceDate"], "%Y-%m-%d %H:%M:%S")
        rows.append((r["InvoiceNo"], r["StockCode"], r["CustomerID"], t, r["UnitPrice"]))
# keep invoices that are exactly one (customer, time), and (customer, time)
# pairs that are exactly one invoice
inv_keys, key_invs = {}, {}
for inv, _, cust, t, _ in rows:
    inv_keys.setdefault(inv, set()).add((cust, t))
    key_invs.setdefault((cust, t), set()).add(inv)
rows = [r for r in rows if len(inv_keys[r[0]]) == 1 and len(key_invs[(r[2], r[3])]) == 1]
utc = datetime.timezone.utc
with open(os.path.join(out, "uci.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
                "UnitPrice", "CustomerID", "Country"])
    for inv, item, cust, t, price in rows:
        when = "%d/%d/%d %d:%02d" % (t.month, t.day, t.year, t.hour, t.minute)
        w.writerow([inv, item, "", 1, when, price, cust, "United Kingdom"])
plus1 = datetime.timezone(datetime.timedelta(hours=1))
with open(os.path.join(out, "generic.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["when", "sku", "qty", "shopper"])
    for inv, item, cust, t, price in rows:
        w.writerow([t.replace(tzinfo=utc).astimezone(plus1).isoformat(), item, 1, cust])
with open(os.path.join(out, "movielens.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["userId", "movieId", "rating", "timestamp"])
    for i, (inv, item, cust, t, price) in enumerate(rows):
        ts = int(t.replace(tzinfo=utc).timestamp())
        w.writerow([cust, item, "5.0", ts])
        if i % 10 == 0:  # a disliked item: below the threshold, dropped
            w.writerow([cust, "NOT-BOUGHT-%d" % i, "2.0", ts])
print(len(rows), "purchases")
