"""The REST API's views (/api/v1/), by audience: `staff` (the active hospital's charts,
records, sharing, break-glass) and `patient` (an account's own registrations, records,
consents, requests and proxies); `common` holds how both describe themselves in the schema.

Views stay thin: the portals' forms validate, the records and consent services write, their
selectors read and decide access (404 for missing, forbidden and other hospitals' ids alike),
and staff reads of charts, records and documents record the provider portal's access events.
"""
