"""The app's engine side (no streamlit): query layer (queries, aggregates), charts, media, live functions
(calibration threshold, pruning), human-evaluation helpers and text similarity. See docs/app.md."""
