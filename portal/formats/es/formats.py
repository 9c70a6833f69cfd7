"""Dates and times on pages read the same way in every language and country: year, month, day
and a 24-hour clock (12/05/2026 is 5 December to a European reader and 12 May to an American
one; an expiry misread by a week is a safety problem). Everything else comes from Django's own
locale formats."""

SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
