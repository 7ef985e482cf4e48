/* Hearth: the charts drawn by the vendored uPlot (webui/static/vendor/uplot): the weekly report's minutes
   per app per day (#usage-chart) and the dashboard's queries and blocks per hour (#hours-chart).
   Data comes from JSON blocks on the page; the same numbers are on the page without JavaScript (a table,
   or the dashboard's SVG, which this replaces). Labels are set with textContent by uPlot. */
(function () {
  "use strict";
  if (typeof uPlot === "undefined") { return; }

  var hoursBox = document.getElementById("hours-chart");
  var hoursSrc = document.getElementById("hours-data");
  if (hoursBox && hoursSrc) {
    var h = JSON.parse(hoursSrc.textContent);
    var hsize = function () { return {width: Math.max(260, hoursBox.clientWidth), height: 180}; };
    var every = function () { return hoursBox.clientWidth < 520 ? 6 : 3; };   /* labels that never collide */
    var hchart = new uPlot({
      width: hsize().width, height: hsize().height,
      series: [{}, {label: h.labels.queries, stroke: "#6b9ac4", fill: "rgba(107,154,196,0.45)", width: 1,
                    paths: uPlot.paths.bars({size: [0.8, 40]}), points: {show: false}},
                   {label: h.labels.blocked, stroke: "#c0392b", fill: "rgba(192,57,43,0.6)", width: 1,
                    paths: uPlot.paths.bars({size: [0.8, 40]}), points: {show: false}}],
      scales: {x: {time: false}},
      axes: [{splits: function () { return h.x.filter(function (_x, i) { return i % every() === 0; }); },
              values: function (u, ticks) {
                return ticks.map(function (t) { return h.labels.hours[h.x.indexOf(t)] || ""; });
              }, size: 28},
             {size: 48}],
      legend: {live: false}, cursor: {drag: {x: false, y: false}}
    }, [h.x, h.total, h.blocked], hoursBox);
    hoursBox.uplot = hchart;    /* for the browser tests: where the axis labels fell */
    hoursBox.closest("figure").classList.add("drawn");
    window.addEventListener("resize", function () { hchart.setSize(hsize()); });
  }

  var box = document.getElementById("usage-chart");
  var src = document.getElementById("usage-data");
  if (!box || !src) { return; }
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
  box.uplot = chart;            /* for the browser tests: where the axis labels fell */
  box.classList.add("drawn");
  window.addEventListener("resize", function () { chart.setSize(size()); });
})();
