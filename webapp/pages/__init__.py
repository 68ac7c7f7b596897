"""One module per page. Each has ``<page>_data(site, ...)``, the page's JSON twin built from
plain records, and ``<page>_view(site, ..., links)``, the same data plus the pictures
(SVG) and anything else only the HTML needs. Routes (webapp/routes.py) stay thin."""
