/* Hearth: the weekly report's chart, drawn by the vendored uPlot (webui/static/vendor/uplot).
   Data comes from a JSON block on the page (#usage-data); the table under the chart has the same numbers,
   so the page reads (and prints) without JavaScript. Labels are set with textContent by uPlot. */
(function () {
  "use strict";
  var box = document.getElementById("usage-chart");
  var src = document.getElementById("usage-data");
  if (!box || !src || typeof uPlot === "undefined") { return; }
  var data = JSON.parse(src.textContent);
  var colours = ["#1f5f8b", "#e07b00", "#2e8b57", "#9b3fb5", "#c0392b", "#6b7b8c"];
  var series = [{}, {
    label: data.labels.all, stroke: "#8fb3cf", fill: "rgba(143,179,207,0.35)", width: 1,
    paths: uPlot.paths.bars({size: [0.7, 48]}), points: {show: false}
  }];
  var values = [data.x, data.all];
  data.services.forEach(function (s, i) {
    series.push({label: s.label, stroke: colours[i % colours.length], width: 2, points: {show: true, size: 6}});
    values.push(s.minutes);
  });
  var lang = document.documentElement.lang || undefined;   /* narrow day names on a phone: no colliding labels */
  var day = new Intl.DateTimeFormat(lang, {weekday: box.clientWidth < 520 ? "narrow" : "short"});
  function size() { return {width: Math.max(260, box.clientWidth), height: 220}; }
  var opts = {
    width: size().width, height: size().height,
    series: series,
    scales: {x: {time: false, range: function () { return [data.x[0] - 43200, data.x[data.x.length - 1] + 43200]; }}},
    axes: [
      {values: function (u, ticks) { return ticks.map(function (t) { return day.format(new Date(t * 1000)); }); },
       splits: function () { return data.x; }, gap: 4, size: 28},
      {label: data.labels.minutes, size: 44}
    ],
    legend: {live: false},
    cursor: {drag: {x: false, y: false}}
  };
  var chart = new uPlot(opts, values, box);
  box.classList.add("drawn");
  window.addEventListener("resize", function () { chart.setSize(size()); });
})();
